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
    /// <summary>Validates <paramref name="leaf"/>; returns every failure (empty when valid) and the identity it carries.</summary>
    public static IReadOnlyList<string> Validate(
        X509Certificate2 leaf,
        IEnumerable<X509Certificate2> presentedCertificates,
        X509Certificate2 pinnedRoot,
        FunctionExpectation expectation,
        DateTimeOffset now,
        out AttestedIdentityExtension? identity)
    {
        var failures = new List<string>();
        using (var chain = new X509Chain())
        {
            chain.ChainPolicy.TrustMode = X509ChainTrustMode.CustomRootTrust;
            chain.ChainPolicy.CustomTrustStore.Add(pinnedRoot);
            foreach (var certificate in presentedCertificates)
            {
                chain.ChainPolicy.ExtraStore.Add(certificate);
            }

            // Function certificates live minutes, not years: expiry is the revocation that matters here.
            chain.ChainPolicy.RevocationMode = X509RevocationMode.NoCheck;
            chain.ChainPolicy.VerificationTime = now.UtcDateTime;
            chain.ChainPolicy.VerificationTimeIgnored = false;
            if (!chain.Build(leaf))
            {
                failures.Add($"chain: the certificate does not chain to the pinned KMS root CA ({string.Join(", ", chain.ChainStatus.Select(s => s.StatusInformation.Trim()).Distinct())})");
            }
            else if (!chain.ChainElements[^1].Certificate.RawData.AsSpan().SequenceEqual(pinnedRoot.RawData))
            {
                failures.Add("chain: the chain ends at another root than the pinned KMS root CA");
            }
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
