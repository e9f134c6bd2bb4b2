using System.Buffers.Binary;
using System.Text;

namespace Morphisms.Serving.Gateway;

/// <summary>The outcome of looking for the server name in the first bytes of a connection.</summary>
public enum ClientHelloStatus
{
    /// <summary>The server name was found.</summary>
    Found,

    /// <summary>A TLS ClientHello without a server_name extension.</summary>
    NoServerName,

    /// <summary>The bytes so far are a valid prefix; read more.</summary>
    NeedMoreData,

    /// <summary>Not a TLS ClientHello (or malformed): close the connection.</summary>
    Invalid,
}

/// <summary>
/// How far <see cref="ClientHelloParser.TryReadServerName(ReadOnlySpan{byte}, ref ClientHelloScan, out string?)"/> got
/// through a connection's first bytes: the next call resumes at the first record not yet complete instead of starting
/// over, so reading a ClientHello that arrives a byte at a time costs time linear in its length.
/// </summary>
public struct ClientHelloScan
{
    // Where the first record not yet scanned starts.
    internal int Offset;

    // The handshake bytes in the complete records scanned.
    internal int Handshake;

    // The handshake message's first four bytes (type, 24-bit length), gathered as they arrive: a record may hold fewer.
    internal uint Header;
}

/// <summary>
/// Reads the SNI host name from a TLS ClientHello without terminating TLS: the gateway is untrusted
/// (DESIGN.md §1), so it may look only at the one cleartext field it needs to route, and then
/// splice the bytes to the instance, where TLS ends inside the TEE. The ClientHello may span several
/// TLS records; it is reassembled up to <see cref="MaxClientHelloBytes"/>.
/// </summary>
public static class ClientHelloParser
{
    /// <summary>Upper bound on the handshake message, so a client cannot make the gateway buffer without limit.</summary>
    public const int MaxClientHelloBytes = 64 * 1024;

    private const byte HandshakeRecord = 22;
    private const byte ClientHelloMessage = 1;
    private const ushort ServerNameExtension = 0;
    private const byte HostNameType = 0;

    /// <summary>Looks for the server name in <paramref name="data"/>, the bytes received so far.</summary>
    public static ClientHelloStatus TryReadServerName(ReadOnlySpan<byte> data, out string? serverName)
    {
        var scan = default(ClientHelloScan);
        return TryReadServerName(data, ref scan, out serverName);
    }

    /// <summary>
    /// Looks for the server name in <paramref name="data"/>, the bytes received so far, resuming where the previous call
    /// with the same <paramref name="scan"/> (and a prefix of the same bytes) left off. Nothing is allocated until the
    /// records holding the whole ClientHello have arrived, and then at most one buffer, for a ClientHello split over
    /// several records: a client sending its hello a byte at a time must not cost the gateway a copy per byte.
    /// </summary>
    public static ClientHelloStatus TryReadServerName(ReadOnlySpan<byte> data, ref ClientHelloScan scan, out string? serverName)
    {
        serverName = null;

        // Walk the consecutive handshake records that have arrived whole, until they hold the whole ClientHello.
        while (true)
        {
            var offset = scan.Offset;
            if (data.Length - offset < 5)
            {
                return ClientHelloStatus.NeedMoreData;
            }

            if (data[offset] != HandshakeRecord || data[offset + 1] != 3)
            {
                return ClientHelloStatus.Invalid;
            }

            var recordLength = BinaryPrimitives.ReadUInt16BigEndian(data[(offset + 3)..]);
            if (recordLength is 0 or > 16384 + 2048)
            {
                return ClientHelloStatus.Invalid;
            }

            if (data.Length - offset - 5 < recordLength)
            {
                return ClientHelloStatus.NeedMoreData;
            }

            var fragment = data.Slice(offset + 5, recordLength);
            for (var i = 0; i < fragment.Length && scan.Handshake + i < 4; i++)
            {
                scan.Header = (scan.Header << 8) | fragment[i];
            }

            scan.Offset += 5 + recordLength;
            scan.Handshake += recordLength;

            if (scan.Handshake >= 4)
            {
                if (scan.Header >> 24 != ClientHelloMessage)
                {
                    return ClientHelloStatus.Invalid;
                }

                var messageLength = (int)(scan.Header & 0xFFFFFF);
                if (messageLength > MaxClientHelloBytes)
                {
                    return ClientHelloStatus.Invalid;
                }

                if (scan.Handshake >= 4 + messageLength)
                {
                    return Assemble(data[..scan.Offset], messageLength, out serverName);
                }
            }
        }
    }

    // Parses the ClientHello out of the records that hold it: in place when the first holds it all (the usual case),
    // else from one copy of the handshake bytes.
    private static ClientHelloStatus Assemble(ReadOnlySpan<byte> records, int messageLength, out string? serverName)
    {
        if (BinaryPrimitives.ReadUInt16BigEndian(records[3..]) >= 4 + messageLength)
        {
            return ParseClientHello(records.Slice(5 + 4, messageLength), out serverName);
        }

        var handshake = new byte[4 + messageLength];
        var copied = 0;
        var offset = 0;
        while (copied < handshake.Length)
        {
            var length = BinaryPrimitives.ReadUInt16BigEndian(records[(offset + 3)..]);
            var take = Math.Min(length, handshake.Length - copied);
            records.Slice(offset + 5, take).CopyTo(handshake.AsSpan(copied));
            copied += take;
            offset += 5 + length;
        }

        return ParseClientHello(handshake.AsSpan(4), out serverName);
    }

    private static ClientHelloStatus ParseClientHello(ReadOnlySpan<byte> hello, out string? serverName)
    {
        serverName = null;
        var reader = new SpanCursor(hello);
        if (!reader.Skip(2 + 32) // legacy_version, random
            || !reader.SkipVector8() // legacy_session_id
            || !reader.SkipVector16() // cipher_suites
            || !reader.SkipVector8()) // legacy_compression_methods
        {
            return ClientHelloStatus.Invalid;
        }

        if (reader.Remaining == 0)
        {
            return ClientHelloStatus.NoServerName; // no extensions at all
        }

        if (!reader.ReadVector16(out var extensions) || reader.Remaining != 0)
        {
            return ClientHelloStatus.Invalid;
        }

        var extensionReader = new SpanCursor(extensions);
        while (extensionReader.Remaining > 0)
        {
            if (!extensionReader.ReadUInt16(out var type) || !extensionReader.ReadVector16(out var body))
            {
                return ClientHelloStatus.Invalid;
            }

            if (type != ServerNameExtension)
            {
                continue;
            }

            var names = new SpanCursor(body);
            if (!names.ReadVector16(out var list) || names.Remaining != 0)
            {
                return ClientHelloStatus.Invalid;
            }

            var entries = new SpanCursor(list);
            while (entries.Remaining > 0)
            {
                if (!entries.ReadByte(out var nameType) || !entries.ReadVector16(out var name))
                {
                    return ClientHelloStatus.Invalid;
                }

                if (nameType == HostNameType)
                {
                    if (name.Length is 0 or > 253 || !IsHostName(name))
                    {
                        return ClientHelloStatus.Invalid;
                    }

                    serverName = Encoding.ASCII.GetString(name).ToLowerInvariant();
                    return ClientHelloStatus.Found;
                }
            }
        }

        return ClientHelloStatus.NoServerName;
    }

    private static bool IsHostName(ReadOnlySpan<byte> name)
    {
        foreach (var c in name)
        {
            if (!(c is (>= (byte)'a' and <= (byte)'z') or (>= (byte)'A' and <= (byte)'Z') or (>= (byte)'0' and <= (byte)'9') or (byte)'-' or (byte)'.'))
            {
                return false;
            }
        }

        return true;
    }

    /// <summary>A bounds-checked reader over TLS's length-prefixed vectors.</summary>
    private ref struct SpanCursor(ReadOnlySpan<byte> data)
    {
        private ReadOnlySpan<byte> _rest = data;

        public readonly int Remaining => _rest.Length;

        public bool Skip(int count)
        {
            if (_rest.Length < count)
            {
                return false;
            }

            _rest = _rest[count..];
            return true;
        }

        public bool ReadByte(out byte value)
        {
            value = 0;
            if (_rest.Length < 1)
            {
                return false;
            }

            value = _rest[0];
            _rest = _rest[1..];
            return true;
        }

        public bool ReadUInt16(out ushort value)
        {
            value = 0;
            if (_rest.Length < 2)
            {
                return false;
            }

            value = BinaryPrimitives.ReadUInt16BigEndian(_rest);
            _rest = _rest[2..];
            return true;
        }

        public bool SkipVector8() => ReadByte(out var length) && Skip(length);

        public bool SkipVector16() => ReadVector16(out _);

        public bool ReadVector16(out ReadOnlySpan<byte> vector)
        {
            vector = default;
            if (!ReadUInt16(out var length) || _rest.Length < length)
            {
                return false;
            }

            vector = _rest[..length];
            _rest = _rest[length..];
            return true;
        }
    }
}
