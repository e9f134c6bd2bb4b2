using System.Runtime.CompilerServices;
using System.Security.Cryptography;
using Morphisms.Attestation.Trust;

namespace Morphisms.Attestation.Verify.Dcap;

/// <summary>
/// A content key for the Intel part of a <see cref="TrustAnchors"/> set. Caches are keyed by it rather
/// than by the object, so a caller that builds an equal anchor set per request still hits the caches,
/// and two sets that differ in any root or simulated flag never share an entry.
/// </summary>
internal static class AnchorIdentity
{
    private static readonly ConditionalWeakTable<TrustAnchors, StrongBox<DigestKey>> Known = new();

    public static DigestKey Of(TrustAnchors anchors)
    {
        if (Known.TryGetValue(anchors, out var known))
        {
            return known.Value;
        }

        using var hash = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
        foreach (var root in anchors.Intel)
        {
            hash.AppendData(root.Simulated ? [1] : [0]);
            hash.AppendData(SHA256.HashData(root.Certificate.RawData));
        }

        var identity = DigestKey.FromDigest(hash.GetHashAndReset());
        Known.AddOrUpdate(anchors, new StrongBox<DigestKey>(identity));
        return identity;
    }
}
