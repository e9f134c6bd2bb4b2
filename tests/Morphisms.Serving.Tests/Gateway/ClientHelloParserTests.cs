using System.Buffers.Binary;
using Morphisms.Serving.Gateway;

namespace Morphisms.Serving.Tests.Gateway;

public class ClientHelloParserTests
{
    [Fact]
    public async Task Reads_the_server_name_of_a_real_client_hello()
    {
        var hello = await TlsTestPeers.CaptureClientHelloAsync("Hello.Fn.Morphisms.Local");
        Assert.Equal(ClientHelloStatus.Found, ClientHelloParser.TryReadServerName(hello, out var name));
        Assert.Equal("hello.fn.morphisms.local", name);
    }

    [Fact]
    public async Task Every_truncation_asks_for_more_data()
    {
        var hello = await TlsTestPeers.CaptureClientHelloAsync("signer.fn.morphisms.local");
        for (var length = 0; length < hello.Length; length++)
        {
            Assert.Equal(ClientHelloStatus.NeedMoreData, ClientHelloParser.TryReadServerName(hello.AsSpan(0, length), out _));
        }
    }

    [Fact]
    public async Task A_client_hello_split_over_two_records_is_reassembled()
    {
        var hello = await TlsTestPeers.CaptureClientHelloAsync("tag-signer.fn.morphisms.local");
        var payload = hello.AsSpan(5).ToArray();
        var split = payload.Length / 3;
        byte[] twoRecords = [.. Record(payload[..split]), .. Record(payload[split..])];
        Assert.Equal(ClientHelloStatus.Found, ClientHelloParser.TryReadServerName(twoRecords, out var name));
        Assert.Equal("tag-signer.fn.morphisms.local", name);
    }

    [Fact]
    public async Task A_client_hello_without_sni_says_so()
    {
        // .NET sends no server_name for an IP-literal target, as RFC 6066 requires.
        var hello = await TlsTestPeers.CaptureClientHelloAsync("127.0.0.1");
        Assert.Equal(ClientHelloStatus.NoServerName, ClientHelloParser.TryReadServerName(hello, out var name));
        Assert.Null(name);
    }

    [Theory]
    [InlineData("GET / HTTP/1.1\r\nHost: x\r\n\r\n")]
    [InlineData("\u0016\u0002\u0000\u0000\u0001\u0000")]
    public void Anything_else_is_invalid(string text)
    {
        Assert.Equal(ClientHelloStatus.Invalid, ClientHelloParser.TryReadServerName(System.Text.Encoding.Latin1.GetBytes(text), out _));
    }

    [Fact]
    public async Task Corrupting_any_byte_never_throws_and_never_yields_a_non_host_name()
    {
        var hello = await TlsTestPeers.CaptureClientHelloAsync("signer.fn.morphisms.local");
        for (var i = 0; i < hello.Length; i++)
        {
            var corrupted = (byte[])hello.Clone();
            corrupted[i] = 0xFF;
            var status = ClientHelloParser.TryReadServerName(corrupted, out var name);
            if (status == ClientHelloStatus.Found)
            {
                Assert.Matches("^[a-z0-9.-]+$", name!);
            }
        }
    }

    private static byte[] Record(byte[] fragment)
    {
        var record = new byte[5 + fragment.Length];
        record[0] = 22;
        record[1] = 3;
        record[2] = 1;
        BinaryPrimitives.WriteUInt16BigEndian(record.AsSpan(3), (ushort)fragment.Length);
        fragment.CopyTo(record, 5);
        return record;
    }
}
