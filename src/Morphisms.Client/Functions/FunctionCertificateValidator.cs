using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;
using Morphisms.Attestation;
using Morphisms.Attestation.Identity;

namespace Morphisms.Client.Functions;

/// <summary>
/// Checks a function's TLS certificate the way DESIGN.md §2 asks of a client: it chains to the KMS
/// root CA the client pinned after attesting the KMS (any intermediate the KMS rotated to is fine,
/// because it chains to the same root), names the host, and carries the attested identity of the
/// expected function — and, optionally, of an expected measurement.
/// </summary>
public static class FunctionCertificateValidator
{
    /// <summary>
    /// The chain policy a function's certificate is built under: the pinned KMS root as the only trust anchor, no
    /// revocation fetch. Given to the TLS stack up front (<see cref="FunctionHttpHandler"/>), it makes the handshake's
    /// own chain build the one that counts, instead of one against the OS store followed by this one.
    /// </summary>
    public static X509ChainPolicy ChainPolicy(X509Certificate2 pinnedRoot)
    {
        var policy = new X509ChainPolicy
        {
            TrustMode = X509ChainTrustMode.CustomRootTrust,

            // Function certificates live minutes, not years: expiry is the revocation that matters here.
            RevocationMode = X509RevocationMode.NoCheck,
        };
        policy.CustomTrustStore.Add(pinnedRoot);
        return policy;
    }

    /// <summary>Validates <paramref name="leaf"/>; returns every failure (empty when valid) and the identity it carries.</summary>
    public static IReadOnlyList<string> Validate(
        X509Certificate2 leaf,
        IEnumerable<X509Certificate2> presentedCertificates,
        X509Certificate2 pinnedRoot,
        FunctionExpectation expectation,
        DateTimeOffset now,
        out AttestedIdentityExtension? identity)
    {
        using var chain = new X509Chain();
        chain.ChainPolicy = ChainPolicy(pinnedRoot);
        foreach (var certificate in presentedCertificates)
        {
            chain.ChainPolicy.ExtraStore.Add(certificate);
        }

        chain.ChainPolicy.VerificationTime = now.UtcDateTime;
        chain.ChainPolicy.VerificationTimeIgnored = false;
        return ValidateBuilt(leaf, chain, chain.Build(leaf), pinnedRoot, expectation, out identity);
    }

    /// <summary>
    /// Validates <paramref name="leaf"/> given a chain already built for it under <see cref="ChainPolicy"/> (by the TLS
    /// handshake); <paramref name="built"/> is what that build returned.
    /// </summary>
    public static IReadOnlyList<string> ValidateBuilt(
        X509Certificate2 leaf,
        X509Chain chain,
        bool built,
        X509Certificate2 pinnedRoot,
        FunctionExpectation expectation,
        out AttestedIdentityExtension? identity)
    {
        var failures = new List<string>();
        if (chain.ChainPolicy.TrustMode != X509ChainTrustMode.CustomRootTrust
            || chain.ChainPolicy.CustomTrustStore.Count != 1
            || !chain.ChainPolicy.CustomTrustStore[0].RawData.AsSpan().SequenceEqual(pinnedRoot.RawData))
        {
            failures.Add("chain: it was not built with the pinned KMS root CA as its only trust anchor");
        }
        else if (!built)
        {
            failures.Add($"chain: the certificate does not chain to the pinned KMS root CA ({string.Join(", ", chain.ChainStatus.Select(s => s.StatusInformation.Trim()).Distinct())})");
        }
        else if (chain.ChainElements.Count == 0
            || !chain.ChainElements[0].Certificate.RawData.AsSpan().SequenceEqual(leaf.RawData)
            || !chain.ChainElements[^1].Certificate.RawData.AsSpan().SequenceEqual(pinnedRoot.RawData))
        {
            failures.Add("chain: the chain does not run from this certificate to the pinned KMS root CA");
        }

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
            return failures;
        }

        if (!string.Equals(identity.Function, expectation.Function, StringComparison.Ordinal))
        {
            failures.Add($"identity: the certificate belongs to function '{identity.Function}', not '{expectation.Function}'");
        }

        if (expectation.Measurement is { } measurement && !identity.Measurement.AsSpan().SequenceEqual(measurement))
        {
            failures.Add($"identity: measurement {Hex.Of(identity.Measurement)} is not the expected {Hex.Of(measurement)}");
        }

        if (identity.Simulated && !expectation.AllowSimulated)
        {
            failures.Add("identity: the function was attested by the simulated TEE, which proves nothing about hardware");
        }

        return failures;
    }
}
