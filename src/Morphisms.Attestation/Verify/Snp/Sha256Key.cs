using System.Buffers.Binary;
using System.Security.Cryptography;

namespace Morphisms.Attestation.Verify.Snp;

/// <summary>A SHA-256 digest as a value type, so content-addressed cache lookups do not allocate.</summary>
internal readonly record struct Sha256Key(ulong A, ulong B, ulong C, ulong D)
{
    public static Sha256Key Of(ReadOnlySpan<byte> data)
    {
        Span<byte> hash = stackalloc byte[32];
        SHA256.HashData(data, hash);
        return new Sha256Key(
            BinaryPrimitives.ReadUInt64LittleEndian(hash),
            BinaryPrimitives.ReadUInt64LittleEndian(hash[8..]),
            BinaryPrimitives.ReadUInt64LittleEndian(hash[16..]),
            BinaryPrimitives.ReadUInt64LittleEndian(hash[24..]));
    }
}
