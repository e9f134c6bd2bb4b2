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

    [Fact]
    public void Waiting_for_a_large_record_a_byte_at_a_time_allocates_nothing()
    {
        // One 16 KiB record: before, every call zeroed a buffer the size of the bytes so far (~128 MB over these calls).
        var hello = Record(Handshake("big.fn.morphisms.local", padding: 16 * 1024 - 200));
        Assert.InRange(hello.Length, 16_000, 16_384 + 5);
        var scan = default(ClientHelloScan);
        Assert.Equal(ClientHelloStatus.NeedMoreData, ClientHelloParser.TryReadServerName(hello.AsSpan(0, 1), ref scan, out _));

        // Counted rather than asserted inside the loop: xUnit's asserts allocate.
        var needMore = 0;
        var before = GC.GetAllocatedBytesForCurrentThread();
        for (var length = 1; length < hello.Length; length++)
        {
            needMore += ClientHelloParser.TryReadServerName(hello.AsSpan(0, length), out _) == ClientHelloStatus.NeedMoreData ? 1 : 0;
            needMore += ClientHelloParser.TryReadServerName(hello.AsSpan(0, length), ref scan, out _) == ClientHelloStatus.NeedMoreData ? 1 : 0;
        }

        var allocated = GC.GetAllocatedBytesForCurrentThread() - before;
        Assert.Equal(2 * (hello.Length - 1), needMore);
        Assert.InRange(allocated, 0, 4096);
        Assert.Equal(ClientHelloStatus.Found, ClientHelloParser.TryReadServerName(hello, ref scan, out var name));
        Assert.Equal("big.fn.morphisms.local", name);
    }

    [Fact]
    public void A_client_hello_in_one_byte_records_is_reassembled_once_with_one_buffer()
    {
        var handshake = Handshake("tiny.fn.morphisms.local", padding: 4000);
        byte[] records = [.. handshake.SelectMany(b => Record([b]))];
        var scan = default(ClientHelloScan);

        var needMore = 0;
        var before = GC.GetAllocatedBytesForCurrentThread();
        for (var length = 0; length < records.Length; length++)
        {
            needMore += ClientHelloParser.TryReadServerName(records.AsSpan(0, length), ref scan, out _) == ClientHelloStatus.NeedMoreData ? 1 : 0;
        }

        var status = ClientHelloParser.TryReadServerName(records, ref scan, out var name);
        var allocated = GC.GetAllocatedBytesForCurrentThread() - before;
        Assert.Equal(records.Length, needMore);
        Assert.Equal(ClientHelloStatus.Found, status);
        Assert.Equal("tiny.fn.morphisms.local", name);
        Assert.InRange(allocated, handshake.Length, handshake.Length + 4096);

        // The same bytes at once, without a scan, read the same; bytes after the ClientHello (the next record) are not its.
        Assert.Equal(ClientHelloStatus.Found, ClientHelloParser.TryReadServerName([.. records, 23, 3, 3, 0, 1], out name));
        Assert.Equal("tiny.fn.morphisms.local", name);
    }

    [Fact]
    public void A_handshake_message_longer_than_the_bound_is_invalid_as_soon_as_its_header_arrives()
    {
        // Type 1, 24-bit length 64 KiB + 1, split so the length's bytes come in two records.
        byte[] records = [.. Record([1, 0x01]), .. Record([0x00, 0x01])];
        Assert.Equal(ClientHelloStatus.Invalid, ClientHelloParser.TryReadServerName(records, out _));
    }

    // A minimal TLS 1.3-style ClientHello handshake message (type, length, body) with a server_name and a padding
    // extension of the given size.
    private static byte[] Handshake(string serverName, int padding)
    {
        var name = System.Text.Encoding.ASCII.GetBytes(serverName);
        byte[] sni = [.. U16(name.Length + 3), 0, .. U16(name.Length), .. name];
        byte[] extensions = [.. U16(0), .. U16(sni.Length), .. sni, .. U16(21), .. U16(padding), .. new byte[padding]];
        byte[] body = [3, 3, .. new byte[32], 0, .. U16(2), 0x13, 0x01, 1, 0, .. U16(extensions.Length), .. extensions];
        return [1, (byte)(body.Length >> 16), (byte)(body.Length >> 8), (byte)body.Length, .. body];
    }

    private static byte[] U16(int value) => [(byte)(value >> 8), (byte)value];

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
