using System.Net.Security;
using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;
using Morphisms.Attestation.Identity;

namespace Morphisms.Attestation.Trust;

/// <summary>
/// The KMS trust pin: SHA-256 of a certificate in the KMS's TLS chain, usually its CA (DER). The agent takes it from
/// the measured launch configuration; the serving host from its configuration, and it sends an admin token over the
/// connection. A KMS connection is accepted only when the chain it presents contains a certificate with that hash and
/// the leaf validates up to it, every signature included: the CA certificate is public, so finding it among the
/// presented ones proves nothing by itself. The pinned certificate may be a self-signed root (the KMS's own
/// self-signed TLS certificate is pinned this way), an intermediate, or the leaf. Nothing is trusted on first use,
/// and the system trust store plays no part. It is never the KMS's PKI root CA (<c>root_ca_sha256</c>) or one of its
/// intermediates: they sign function and <c>pki/</c> role certificates, so a chain through one that carries
/// <see cref="KmsPkiCaMarker"/> is refused even when it validates.
/// </summary>
public sealed class KmsPin(byte[] sha256, TimeProvider time)
{
    private readonly byte[] _sha256 = sha256.Length == 32 ? sha256.ToArray() : throw new ArgumentException("a KMS CA pin is 32 bytes (SHA-256)", nameof(sha256));

    /// <summary>The pinned hash, lowercase hex.</summary>
    public string Hex => Convert.ToHexStringLower(_sha256);

    /// <summary>The last rejection reason (for the error the agent exits with).</summary>
    public string? LastFailure { get; private set; }

    /// <summary>
    /// Makes <paramref name="options"/> check every handshake with this pin. The TLS stack builds a chain of its own
    /// before the callback, whatever the callback decides: with no anchor, no revocation check and no downloads it stops
    /// at the presented certificates, instead of loading the system store (slow on a cold start, and irrelevant) or
    /// fetching from an address a certificate names.
    /// </summary>
    public void ApplyTo(SslClientAuthenticationOptions options)
    {
        ArgumentNullException.ThrowIfNull(options);
        options.RemoteCertificateValidationCallback = Validate;
        options.CertificateChainPolicy = HandshakeChainPolicy();
    }

    /// <summary>
    /// The chain policy for the TLS stack's own build when a pin decides trust instead: no anchor, no revocation check
    /// and no downloads, so the build stops at the presented certificates and a certificate cannot make the client
    /// fetch from an address it names.
    /// </summary>
    public static X509ChainPolicy HandshakeChainPolicy() => new()
    {
        TrustMode = X509ChainTrustMode.CustomRootTrust,
        RevocationMode = X509RevocationMode.NoCheck,
        DisableCertificateDownloads = true,
    };

    /// <summary>A <see cref="RemoteCertificateValidationCallback"/> applying the pin.</summary>
    public bool Validate(object? sender, X509Certificate? certificate, X509Chain? chain, SslPolicyErrors errors)
    {
        var ok = Check(certificate, chain, errors, out var reason);
        LastFailure = ok ? null : reason;
        return ok;
    }

    /// <summary>Checks a presented chain against the pin.</summary>
    public bool Check(X509Certificate? certificate, X509Chain? chain, SslPolicyErrors errors, out string reason)
    {
        if (certificate is null)
        {
            reason = "the KMS presented no certificate";
            return false;
        }

        // The pin replaces the trust store, not the host name check.
        if ((errors & (SslPolicyErrors.RemoteCertificateNameMismatch | SslPolicyErrors.RemoteCertificateNotAvailable)) != 0)
        {
            reason = $"the KMS certificate does not match the host name ({errors})";
            return false;
        }

        using var leaf = X509CertificateLoader.LoadCertificate(certificate.GetRawCertData());
        var presented = new X509Certificate2Collection { leaf };
        if (chain is not null)
        {
            foreach (var element in chain.ChainElements)
            {
                presented.Add(element.Certificate);
            }

            presented.AddRange(chain.ChainPolicy.ExtraStore);
        }

        var anchor = presented.FirstOrDefault(c => CryptographicOperations.FixedTimeEquals(SHA256.HashData(c.RawData), _sha256));
        if (anchor is null)
        {
            reason = $"no certificate in the KMS TLS chain has the pinned SHA-256 {Hex}";
            return false;
        }

        using var build = new X509Chain();
        build.ChainPolicy.TrustMode = X509ChainTrustMode.CustomRootTrust;
        build.ChainPolicy.CustomTrustStore.Add(anchor);
        build.ChainPolicy.ExtraStore.AddRange(presented);
        build.ChainPolicy.RevocationMode = X509RevocationMode.NoCheck;

        // A certificate must not make the agent fetch from an address it names.
        build.ChainPolicy.DisableCertificateDownloads = true;
        build.ChainPolicy.VerificationTime = time.GetUtcNow().UtcDateTime;
        build.Build(leaf);

        // The verdict is read from the elements, from the leaf up to the pinned one. A TLS server never sends a
        // self-signed root (.NET's and Kestrel's leave it out), so a KMS whose certificate a CA issued can only be
        // pinned at a certificate it serves: an intermediate, or its leaf. The chain then stops there unfinished
        // (PartialChain), which says nothing about the links below; every other flag on them refuses.
        var elements = build.ChainElements;
        var reached = -1;
        for (var i = 0; i < elements.Count && reached < 0; i++)
        {
            reached = elements[i].Certificate.RawData.AsSpan().SequenceEqual(anchor.RawData) ? i : -1;
        }

        if (reached < 0)
        {
            reason = "the KMS TLS chain does not validate to the pinned CA: it does not reach the pinned certificate ("
                + string.Join("; ", build.ChainStatus.Select(s => s.StatusInformation.Trim())) + ")";
            return false;
        }

        // The KMS's PKI root also signs function certificates and pki/ role leaves for any name a role allows: pinned
        // there (or with the KMS's TLS certificate issued from pki/), anyone allowed to issue from a role could pass
        // for the KMS. Its root and intermediates carry the marker; the leaf is checked too, which costs nothing.
        // The pinned certificate is looked at first: that is the mistake to name.
        for (var i = reached; i >= 0; i--)
        {
            if (KmsPkiCaMarker.IsOn(elements[i].Certificate))
            {
                var which = i == reached ? "the pinned certificate" : $"'{elements[i].Certificate.Subject}' in the KMS TLS chain";
                reason = $"{which} is the KMS's PKI root CA or an intermediate of it (it carries the KMS PKI CA marker {KmsPkiCaMarker.Oid}): "
                    + "that CA also signs function and pki/ role certificates, so it cannot identify the KMS. Pin the CA that issued "
                    + "the KMS's TLS certificate, or that certificate (never root_ca_sha256), and issue the KMS's TLS certificate from a CA of its own";
                return false;
            }
        }

        var problems = elements.Take(reached + 1)
            .SelectMany(e => e.ChainElementStatus)
            .Where(s => s.Status != X509ChainStatusFlags.NoError && s.Status != X509ChainStatusFlags.PartialChain)
            .Select(s => s.StatusInformation.Trim())
            .Distinct()
            .ToList();
        if (problems.Count > 0)
        {
            reason = "the KMS TLS chain does not validate to the pinned CA: " + string.Join("; ", problems);
            return false;
        }

        reason = "";
        return true;
    }
}
