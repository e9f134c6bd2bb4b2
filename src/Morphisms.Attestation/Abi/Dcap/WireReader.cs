using System.Buffers.Binary;

namespace Morphisms.Attestation.Abi.Dcap;

/// <summary>
/// Bounds-checked little-endian reader over a quote. Every read names its field so a truncated
/// or inconsistent quote is reported as "field: … at offset N" instead of an index exception.
/// </summary>
internal struct WireReader
{
    private readonly ReadOnlyMemory<byte> _buffer;
    private readonly int _end;

    public WireReader(ReadOnlyMemory<byte> buffer, int start, int end)
    {
        _buffer = buffer;
        Position = start;
        _end = end;
    }

    public int Position { get; private set; }

    public readonly int Remaining => _end - Position;

    public ReadOnlyMemory<byte> ReadBytes(int count, string field)
    {
        Ensure(count, field);
        var slice = _buffer.Slice(Position, count);
        Position += count;
        return slice;
    }

    public ushort ReadUInt16(string field) => BinaryPrimitives.ReadUInt16LittleEndian(ReadBytes(2, field).Span);

    public uint ReadUInt32(string field) => BinaryPrimitives.ReadUInt32LittleEndian(ReadBytes(4, field).Span);

    /// <summary>Reads a length taken from the wire, refusing one that would run past the enclosing structure.</summary>
    public ReadOnlyMemory<byte> ReadSized(long declaredLength, string field)
    {
        if (declaredLength > Remaining)
        {
            throw new EvidenceFormatException(field,
                $"declared length {declaredLength} at offset {Position} exceeds the {Remaining} bytes available");
        }

        return ReadBytes((int)declaredLength, field);
    }

    public readonly void EnsureConsumed(string structure)
    {
        if (Position != _end)
        {
            throw new EvidenceFormatException(structure,
                $"{_end - Position} unparsed bytes at offset {Position} inside its declared length");
        }
    }

    private readonly void Ensure(int count, string field)
    {
        if (count > Remaining)
        {
            throw new EvidenceFormatException(field,
                $"truncated at offset {Position}: needs {count} bytes, {Math.Max(Remaining, 0)} left");
        }
    }
}
