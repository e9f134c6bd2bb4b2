using System.Buffers.Binary;
using System.Net.Security;
using Morphisms.Serving.Gateway;

namespace Morphisms.Serving.Tests.Fuzz;

/// <summary>
/// The gateway reads the SNI of every connection's first bytes, sent by anyone on the network. A real ClientHello
/// (.NET's own, whole and split over records), mutated — its record, handshake, session, cipher, extension and name
/// lengths above all — must come out as a status, never an exception; and reading it as it arrives, in chunks, must
/// reach the same answer as reading it at once.
/// </summary>
public sealed class ClientHelloFuzzTests
{
    [Fact]
    public void Client_hello_is_read_or_refused_and_the_same_when_it_arrives_in_pieces()
    {
        var hello = CaptureClientHello("fn.functions.example");
        FuzzSeed[] seeds =
        [
            new("one record", hello, Fields(hello)),
            new("two records", Split(hello, 5 + 2)),
            new("three records", Split(Split(hello, 5 + 100), 5 + 2)),
        ];
        foreach (var seed in seeds)
        {
            Assert.Equal(ClientHelloStatus.Found, ClientHelloParser.TryReadServerName(seed.Data, out var name));
            Assert.Equal("fn.functions.example", name);
        }

        Fuzzer.Run("ClientHelloParser.TryReadServerName", seed: 0x7150, iterations: 3000, seeds, Mutations.Bytes, bytes =>
        {
            var status = ClientHelloParser.TryReadServerName(bytes, out var name);
            var (pieces, piecesName) = InPieces(bytes);
            if (pieces != status || piecesName != name)
            {
                throw new InvalidOperationException($"read at once: {status} '{name}'; in pieces: {pieces} '{piecesName}'");
            }
        });
    }

    /// <summary>Feeds growing prefixes (1, 2, 3… bytes more each time) through one scan, as the gateway does while bytes arrive.</summary>
    private static (ClientHelloStatus, string?) InPieces(byte[] bytes)
    {
        var scan = default(ClientHelloScan);
        var length = 0;
        for (var step = 1; ; step++)
        {
            length = Math.Min(bytes.Length, length + step);
            var status = ClientHelloParser.TryReadServerName(bytes.AsSpan(0, length), ref scan, out var name);
            if (status != ClientHelloStatus.NeedMoreData || length == bytes.Length)
            {
                return (status, name);
            }
        }
    }

    /// <summary>The first flight of a real TLS client: what SslStream writes before it waits for the server.</summary>
    private static byte[] CaptureClientHello(string host)
    {
        var capture = new CaptureStream();
        using var tls = new SslStream(capture);
        try
        {
            tls.AuthenticateAsClient(new SslClientAuthenticationOptions { TargetHost = host });
        }
        catch (Exception e) when (e is IOException or System.Security.Authentication.AuthenticationException)
        {
            // The "server" closed at once: the ClientHello is all that was written.
        }

        return capture.Written.ToArray();
    }

    /// <summary>The record's handshake split into two records at <paramref name="at"/> (an offset into the first record).</summary>
    private static byte[] Split(byte[] records, int at)
    {
        var length = BinaryPrimitives.ReadUInt16BigEndian(records.AsSpan(3));
        byte[] first = [.. records[..5], .. records[5..at]];
        byte[] second = [.. records[..5], .. records[at..(5 + length)]];
        BinaryPrimitives.WriteUInt16BigEndian(first.AsSpan(3), (ushort)(first.Length - 5));
        BinaryPrimitives.WriteUInt16BigEndian(second.AsSpan(3), (ushort)(second.Length - 5));
        return [.. first, .. second, .. records[(5 + length)..]];
    }

    /// <summary>Every length of a one-record ClientHello, down to the server name's.</summary>
    private static List<WireField> Fields(byte[] hello)
    {
        var fields = new List<WireField>
        {
            new("record.type", 0, 1), new("record.version", 1, 2, BigEndian: true), new("record.length", 3, 2, BigEndian: true),
            new("handshake.type", 5, 1), new("handshake.length.high", 6, 1), new("handshake.length", 7, 2, BigEndian: true),
        };
        var at = 9 + 2 + 32;
        fields.Add(new("session_id.length", at, 1));
        at += 1 + hello[at];
        fields.Add(new("cipher_suites.length", at, 2, BigEndian: true));
        at += 2 + BinaryPrimitives.ReadUInt16BigEndian(hello.AsSpan(at));
        fields.Add(new("compression_methods.length", at, 1));
        at += 1 + hello[at];
        fields.Add(new("extensions.length", at, 2, BigEndian: true));
        at += 2;
        while (at + 4 <= hello.Length)
        {
            var type = BinaryPrimitives.ReadUInt16BigEndian(hello.AsSpan(at));
            var length = BinaryPrimitives.ReadUInt16BigEndian(hello.AsSpan(at + 2));
            fields.Add(new($"extension {type}.type", at, 2, BigEndian: true));
            fields.Add(new($"extension {type}.length", at + 2, 2, BigEndian: true));
            if (type == 0)
            {
                fields.Add(new("server_name_list.length", at + 4, 2, BigEndian: true));
                fields.Add(new("server_name.type", at + 6, 1));
                fields.Add(new("server_name.length", at + 7, 2, BigEndian: true));
            }

            at += 4 + length;
        }

        return fields;
    }

    private sealed class CaptureStream : Stream
    {
        public MemoryStream Written { get; } = new();

        public override bool CanRead => true;

        public override bool CanSeek => false;

        public override bool CanWrite => true;

        public override long Length => throw new NotSupportedException();

        public override long Position { get => throw new NotSupportedException(); set => throw new NotSupportedException(); }

        public override int Read(byte[] buffer, int offset, int count) => 0;

        public override void Write(byte[] buffer, int offset, int count) => Written.Write(buffer, offset, count);

        public override void Flush()
        {
        }

        public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();

        public override void SetLength(long value) => throw new NotSupportedException();
    }
}
