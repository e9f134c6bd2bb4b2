using System.Buffers;
using System.Security.Cryptography;

namespace Morphisms.Kms.Barrier;

/// <summary>
/// An <see cref="IBufferWriter{T}"/> for key material: unlike <see cref="ArrayBufferWriter{T}"/> or the serializer's
/// pooled buffers, it zeroes every array it lets go of — the one it outgrows and, on <see cref="Dispose"/>, the last.
/// </summary>
internal sealed class SensitiveBufferWriter : IBufferWriter<byte>, IDisposable
{
    private byte[] _buffer;
    private int _written;

    /// <summary>Writes into <paramref name="scratch"/> first; it is zeroed once outgrown or on <see cref="Dispose"/>.</summary>
    public SensitiveBufferWriter(byte[] scratch) => _buffer = scratch;

    /// <summary>What was written so far; valid until the next write or <see cref="Dispose"/>.</summary>
    public ReadOnlySpan<byte> WrittenSpan => _buffer.AsSpan(0, _written);

    public void Advance(int count)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(count);
        ArgumentOutOfRangeException.ThrowIfGreaterThan(count, _buffer.Length - _written);
        _written += count;
    }

    public Memory<byte> GetMemory(int sizeHint = 0)
    {
        Reserve(sizeHint);
        return _buffer.AsMemory(_written);
    }

    public Span<byte> GetSpan(int sizeHint = 0)
    {
        Reserve(sizeHint);
        return _buffer.AsSpan(_written);
    }

    public void Dispose() => CryptographicOperations.ZeroMemory(_buffer);

    private void Reserve(int sizeHint)
    {
        var needed = Math.Max(sizeHint, 1);
        if (_buffer.Length - _written >= needed)
        {
            return;
        }

        var bigger = new byte[Math.Max(_buffer.Length * 2, checked(_written + needed))];
        _buffer.AsSpan(0, _written).CopyTo(bigger);
        CryptographicOperations.ZeroMemory(_buffer);
        _buffer = bigger;
    }
}
