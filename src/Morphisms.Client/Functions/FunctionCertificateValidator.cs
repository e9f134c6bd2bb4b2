using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;
using Morphisms.Attestation.Identity;

namespace Morphisms.Client.Functions;

/// <summary>
/// Checks a function's TLS certificate the way DESIGN.md §2 asks of a client: it chains to the KMS
/// root CA the client pinned after attesting the KMS (any intermediate the KMS rotated to is fine,
/// because it chains to the same root), names the host, and carries the attested identity of the
/// expected function — and, optionally, an expected measurement of an expected TEE.
/// </summary>
public static class FunctionCertificateValidator
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

            // Function certificates live minutes, not years (the KMS caps them, 15 minutes by default: --function-cert-ttl),
            // and the client fetches no CRL: expiry is the revocation that matters here, so a retired revision's
            // instance is refused at most that long after the retirement revoked its certificate.
            RevocationMode = X509RevocationMode.NoCheck,
            DisableCertificateDownloads = true,
        };
        policy.CustomTrustStore.Add(pinnedRoot);
        return policy;
    }

    /// <summary>Validates <paramref name="leaf"/>; returns every failure (empty when valid) and the identity it carries.</summary>
    public static IReadOnlyList<string> Validate(
        X509Certificate2 leaf,
        IReadOnlyList<X509Certificate2> presentedCertificates,
        X509Certificate2 pinnedRoot,
        FunctionExpectation expectation,
        DateTimeOffset now,
        out AttestedIdentityExtension? identity) =>
        Validate(leaf, presentedCertificates, pinnedRoot, expectation, now, chainCache: null, out identity);

    /// <summary>
    /// Validates <paramref name="leaf"/> as <see cref="Validate(X509Certificate2, IReadOnlyList{X509Certificate2}, X509Certificate2, FunctionExpectation, DateTimeOffset, out AttestedIdentityExtension?)"/>
    /// does, taking the chain's verdict from <paramref name="chainCache"/> when these exact certificates were built to
    /// this root before (and adding it when they build now).
    /// </summary>
    public static IReadOnlyList<string> Validate(
        X509Certificate2 leaf,
        IReadOnlyList<X509Certificate2> presentedCertificates,
        X509Certificate2 pinnedRoot,
        FunctionExpectation expectation,
        DateTimeOffset now,
        VerifiedChainCache? chainCache,
        out AttestedIdentityExtension? identity)
    {
        var failures = new List<string>();
        if (CheckChain(leaf, presentedCertificates, pinnedRoot, now, chainCache) is { } chainFailure)
        {
            failures.Add(chainFailure);
        }

        CheckHostAndIdentity(leaf, expectation, failures, out identity);
        return failures;
    }

    private static string? CheckChain(X509Certificate2 leaf, IReadOnlyList<X509Certificate2> presented, X509Certificate2 pinnedRoot, DateTimeOffset now, VerifiedChainCache? cache)
    {
        var key = cache is null ? null : VerifiedChainCache.KeyOf(pinnedRoot, leaf, presented);
        if (key is not null && cache!.TryHit(key, now))
        {
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

        if (key is not null)
        {
            cache!.Add(key, chain, now);
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
