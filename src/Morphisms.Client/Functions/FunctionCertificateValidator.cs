using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;
using Morphisms.Attestation.Identity;

namespace Morphisms.Client.Functions;

/// <summary>
/// Checks a function's TLS certificate the way DESIGN.md §2 asks of a client: it chains to the KMS
/// root CA the client pinned after attesting the KMS (any intermediate the KMS rotated to is fine,
/// because it chains to the same root), names the host, and carries the attested identity of the
/// expected function — and, optionally, an expected measurement of an expected TEE — and is not on its issuing CA's CRL.
/// Internal, with the revocation check a required argument: outside this library, a function certificate is checked
/// only through <see cref="FunctionHttpHandler"/>, which has the KMS to fetch CRLs from (<see cref="FunctionRevocationOptions"/>),
/// so no caller gets a check weaker than <c>morph invoke</c>'s by calling a validation that skips revocation.
/// </summary>
internal static class FunctionCertificateValidator
{
    /// <summary>
    /// The chain policy a function's certificate is built under: the pinned KMS root as the only trust anchor, no
    /// revocation fetch and no download of missing intermediates (a validation must not reach out to addresses a
    /// certificate names).
    /// </summary>
    private static X509ChainPolicy ChainPolicy(X509Certificate2 pinnedRoot)
    {
        var policy = new X509ChainPolicy
        {
            TrustMode = X509ChainTrustMode.CustomRootTrust,

            // The platform's revocation check would fetch from the addresses a certificate names, and a chain verdict
            // that depends on a CRL could not be cached: the leaf is looked up in the KMS's CRL after the build, from
            // the pinned KMS (FunctionCrlCache), on every handshake.
            RevocationMode = X509RevocationMode.NoCheck,
            DisableCertificateDownloads = true,
        };
        policy.CustomTrustStore.Add(pinnedRoot);
        return policy;
    }

    /// <summary>
    /// Validates <paramref name="leaf"/>; returns every failure (empty when valid) and the identity it carries. The chain's
    /// verdict comes from <paramref name="chainCache"/> when these exact certificates were built to this root before (and
    /// is added when they build now). Then, when nothing else failed, the leaf is looked up in the CRL of the CA that
    /// issued it (a cache hit included: the chain cache remembers that CA), unless <paramref name="revocation"/> is null:
    /// explicitly no revocation check (<see cref="RevocationCheck.Off"/>).
    /// </summary>
    internal static IReadOnlyList<string> Validate(
        X509Certificate2 leaf,
        IReadOnlyList<X509Certificate2> presentedCertificates,
        X509Certificate2 pinnedRoot,
        FunctionExpectation expectation,
        DateTimeOffset now,
        VerifiedChainCache? chainCache,
        FunctionRevocationChecker? revocation,
        out AttestedIdentityExtension? identity)
    {
        var failures = new List<string>();
        if (CheckChain(leaf, presentedCertificates, pinnedRoot, now, chainCache, out var issuingCa) is { } chainFailure)
        {
            failures.Add(chainFailure);
        }

        CheckHostAndIdentity(leaf, expectation, failures, out identity);

        // Last, and only for a certificate accepted otherwise: it may wait for a fetch from the KMS.
        if (failures.Count == 0 && revocation is not null && revocation.Check(leaf, issuingCa!, now) is { } revoked)
        {
            failures.Add(revoked);
        }

        return failures;
    }

    private static string? CheckChain(X509Certificate2 leaf, IReadOnlyList<X509Certificate2> presented, X509Certificate2 pinnedRoot, DateTimeOffset now, VerifiedChainCache? cache,
        out X509Certificate2? issuingCa)
    {
        issuingCa = null;
        var key = cache is null ? null : VerifiedChainCache.KeyOf(pinnedRoot, leaf, presented);
        if (key is not null && cache!.TryHit(key, now, out var cachedIssuer))
        {
            issuingCa = cachedIssuer < 0 ? pinnedRoot : presented[cachedIssuer];
            return null;
        }

        using var chain = new X509Chain();
        chain.ChainPolicy = ChainPolicy(pinnedRoot);
        foreach (var certificate in presented)
        {
            chain.ChainPolicy.ExtraStore.Add(certificate);
        }

        chain.ChainPolicy.VerificationTime = now.UtcDateTime;
        chain.ChainPolicy.VerificationTimeIgnored = false;
        if (!chain.Build(leaf))
        {
            return $"chain: the certificate does not chain to the pinned KMS root CA ({string.Join(", ", chain.ChainStatus.Select(s => s.StatusInformation.Trim()).Distinct())})";
        }

        if (chain.ChainElements.Count == 0
            || !chain.ChainElements[0].Certificate.RawData.AsSpan().SequenceEqual(leaf.RawData)
            || !chain.ChainElements[^1].Certificate.RawData.AsSpan().SequenceEqual(pinnedRoot.RawData))
        {
            return "chain: the chain does not run from this certificate to the pinned KMS root CA";
        }

        if (chain.ChainElements.Count < 2)
        {
            return "chain: the certificate is the pinned KMS root CA itself, not one issued under it";
        }

        // The leaf's issuer is one of the caller's certificates (downloads are off): that one is kept, not the chain's
        // copy, which goes with the chain.
        var issuer = chain.ChainElements[1].Certificate.RawData;
        var index = -1;
        for (var i = 0; i < presented.Count && index < 0; i++)
        {
            index = presented[i].RawData.AsSpan().SequenceEqual(issuer) ? i : -1;
        }

        // Not sent by the server, the issuer can only be the pinned root itself: .NET's chain builder also takes
        // intermediates from this machine's certificate stores, and the CRL checked must be the one of the CA that
        // really issued the leaf, not the root's (which lists intermediates only).
        if (index < 0 && chain.ChainElements.Count > 2)
        {
            return "chain: the server did not send the CA that issued its certificate (it was found in this machine's certificate stores), so whose CRL lists its revocation cannot be told";
        }

        issuingCa = index < 0 ? pinnedRoot : presented[index];
        if (key is not null)
        {
            cache!.Add(key, chain, now, index);
        }

        return null;
    }

    private static void CheckHostAndIdentity(X509Certificate2 leaf, FunctionExpectation expectation, List<string> failures, out AttestedIdentityExtension? identity)
    {
        if (!leaf.MatchesHostname(expectation.Host, allowWildcards: false))
        {
            failures.Add($"host: the certificate does not name {expectation.Host}");
        }

        identity = null;
        try
        {
            identity = AttestedIdentityExtension.FromCertificate(leaf);
            if (identity is null)
            {
                failures.Add("identity: the certificate carries no attested identity: it was not issued at attest-login");
            }
        }
        catch (CryptographicException e)
        {
            failures.Add($"identity: the attested-identity extension is malformed ({e.Message})");
        }

        if (identity is null)
        {
            return;
        }

        if (!string.Equals(identity.Function, expectation.Function, StringComparison.Ordinal))
        {
            failures.Add($"identity: the certificate belongs to function '{identity.Function}', not '{expectation.Function}'");
        }

        if (expectation.Measurement?.Mismatch(identity) is { } mismatch)
        {
            failures.Add($"identity: {mismatch}");
        }

        if (identity.Simulated && !expectation.AllowSimulated)
        {
            failures.Add("identity: the function was attested by the simulated TEE, which proves nothing about hardware");
        }
    }
}
