using System.Runtime.CompilerServices;
using System.Security.Cryptography;
using Morphisms.Attestation.Collateral;
using Morphisms.Attestation.Trust;

namespace Morphisms.Attestation.Verify.Dcap;

/// <summary>
/// Memoises <see cref="CollateralVerifier.Verify"/>, which parses JSON and checks several signatures.
/// A result is reused only while the evaluation time stays between the same two "time boundaries":
/// every instant the outcome can flip at (issue and next-update dates of each document and CRL, the
/// validity of every candidate signing certificate and root). Between two boundaries every time
/// comparison the collateral verifier makes has the same answer, so the result is the same.
/// </summary>
internal static class CollateralCache
{
    private static readonly BoundedCache<(DigestKey Collateral, TeeType Tee, DigestKey Anchors), Entry> Cache = new(256);

    // Hashing a collateral set (~20 KB) costs about a fifth of a signature check; remember it per object.
    private static readonly ConditionalWeakTable<DcapCollateral, StrongBox<DigestKey>> Identities = new();

    public static VerifiedCollateral Verify(DcapCollateral collateral, TeeType tee, TrustAnchors anchors, DateTimeOffset time, CheckLog log)
    {
        var key = (IdentityOf(collateral), tee, AnchorIdentity.Of(anchors));
        if (!Cache.TryGet(key, out var entry) || !entry.Covers(time))
        {
            entry = Compute(collateral, tee, anchors, time);
            Cache.Set(key, entry);
        }

        foreach (var failure in entry.Failures)
        {
            log.Fail(failure.Check, failure.Reason);
        }

        return entry.Verified;
    }

    internal static void ClearCache() => Cache.Clear();

    private static Entry Compute(DcapCollateral collateral, TeeType tee, TrustAnchors anchors, DateTimeOffset time)
    {
        var log = new CheckLog();
        var verified = CollateralVerifier.Verify(collateral, tee, anchors, time, log);

        var boundaries = Boundaries(collateral, anchors);
        var lower = DateTimeOffset.MinValue;
        var upper = DateTimeOffset.MaxValue;
        var onBoundary = false;
        foreach (var boundary in boundaries)
        {
            if (boundary < time && boundary > lower)
            {
                lower = boundary;
            }
            else if (boundary > time && boundary < upper)
            {
                upper = boundary;
            }
            else if (boundary == time)
            {
                onBoundary = true;
            }
        }

        return new Entry(verified, log.Failures, lower, upper, onBoundary ? time : null);
    }

    /// <summary>
    /// Every instant found in the inputs, read independently of what the verifier kept, so a document
    /// it rejected (wrong TEE, malformed) still contributes its dates.
    /// </summary>
    private static List<DateTimeOffset> Boundaries(DcapCollateral collateral, TrustAnchors anchors)
    {
        var instants = new List<DateTimeOffset>();
        if (collateral.TcbInfo is { } tcbInfo && Try(() => TcbInfo.Parse(tcbInfo.Body)) is { } parsedTcb)
        {
            instants.Add(parsedTcb.IssueDate);
            instants.Add(parsedTcb.NextUpdate);
        }

        if (collateral.QeIdentity is { } qeIdentity && Try(() => EnclaveIdentity.Parse(qeIdentity.Body)) is { } parsedQe)
        {
            instants.Add(parsedQe.IssueDate);
            instants.Add(parsedQe.NextUpdate);
        }

        foreach (var der in new[] { collateral.PckCrl, collateral.RootCaCrl })
        {
            if (der is not null && Try(() => CertificateRevocationList.Parse(der)) is { } crl)
            {
                instants.Add(crl.ThisUpdate);
                if (crl.NextUpdate is { } next)
                {
                    instants.Add(next);
                }
            }
        }

        var certificates = collateral.TcbSigningCertificates
            .Concat(KnownIntermediates.IntelTcbSigning)
            .Concat(anchors.Intel.Select(r => r.Certificate));
        foreach (var certificate in certificates)
        {
            instants.Add(new DateTimeOffset(certificate.NotBefore.ToUniversalTime()));
            instants.Add(new DateTimeOffset(certificate.NotAfter.ToUniversalTime()));
        }

        return instants;
    }

    private static DigestKey IdentityOf(DcapCollateral collateral)
    {
        if (Identities.TryGetValue(collateral, out var known))
        {
            return known.Value;
        }

        using var hash = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
        AppendItem(hash, collateral.TcbInfo?.Body);
        AppendItem(hash, collateral.TcbInfo?.Signature);
        AppendItem(hash, collateral.QeIdentity?.Body);
        AppendItem(hash, collateral.QeIdentity?.Signature);
        AppendItem(hash, collateral.PckCrl);
        AppendItem(hash, collateral.RootCaCrl);
        foreach (var certificate in collateral.TcbSigningCertificates)
        {
            AppendItem(hash, certificate.RawData);
        }

        var identity = DigestKey.FromDigest(hash.GetHashAndReset());
        Identities.AddOrUpdate(collateral, new StrongBox<DigestKey>(identity));
        return identity;
    }

    // Length-prefixed, with a marker for absent items, so different splits of the same bytes differ.
    private static void AppendItem(IncrementalHash hash, byte[]? item)
    {
        Span<byte> length = stackalloc byte[8];
        BitConverter.TryWriteBytes(length, item is null ? -1L : item.LongLength);
        hash.AppendData(length);
        if (item is not null)
        {
            hash.AppendData(item);
        }
    }

    private static T? Try<T>(Func<T> parse)
        where T : class
    {
        try
        {
            return parse();
        }
        catch (Exception e) when (e is FormatException or ArgumentException or InvalidOperationException)
        {
            return null;
        }
    }

    private sealed record Entry(VerifiedCollateral Verified, IReadOnlyList<CheckFailure> Failures, DateTimeOffset Lower, DateTimeOffset Upper, DateTimeOffset? Exact)
    {
        public bool Covers(DateTimeOffset time) => Exact is { } exact ? time == exact : time > Lower && time < Upper;
    }
}
