using System.Runtime.InteropServices;
using System.Security.Cryptography;

namespace Morphisms.Attestation.Verify.Dcap;

/// <summary>A SHA-256 digest used as a cache key, so caches are keyed by content rather than by object identity.</summary>
internal readonly record struct DigestKey(UInt128 High, UInt128 Low)
{
    public static DigestKey Of(ReadOnlySpan<byte> data)
    {
        Span<byte> digest = stackalloc byte[32];
        SHA256.HashData(data, digest);
        return FromDigest(digest);
    }

    public static DigestKey FromDigest(ReadOnlySpan<byte> digest) =>
        new(MemoryMarshal.Read<UInt128>(digest), MemoryMarshal.Read<UInt128>(digest[16..]));
}
