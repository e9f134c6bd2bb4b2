using System.Net.Security;
using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;
using Morphisms.Client.Trust;

namespace Morphisms.Cli.Commands.Kms;

/// <summary>
/// The TLS trust <c>morph kms</c> takes from a <c>morph kms trust</c> record for its address: the server must present a
/// TLS key that <c>morph kms trust</c> attested (<see cref="KmsTrustRecord.TlsSpkiSha256"/>, the key the KMS's evidence
/// binds) for a KMS holding the same root CA, with a certificate that names the host. That covers the address itself
/// and the other nodes of an HA cluster the user trusted by their own addresses (they share the root CA, which lives
/// behind their common barrier), and nothing else: a standby's <c>Location</c> comes from the database, which is not
/// trusted, so a redirect whose target passes only the system roots gets no request and no token.
/// </summary>
/// <remarks>
/// The record's root CA itself is no TLS anchor: a KMS's TLS certificate is self-signed or the operator's, not issued
/// under that root, and the root also signs function and <c>pki/</c> role certificates, which are no KMS. Like the
/// agent's <see cref="Morphisms.Attestation.Trust.KmsPin"/>, the pin replaces the system trust store but not the host
/// name check, and nothing is trusted on first use here.
/// </remarks>
public sealed class KmsTlsPin
{
    private readonly HashSet<string> _keys;

    private KmsTlsPin(KmsTrustRecord record, IEnumerable<string> keys)
    {
        Record = record;
        _keys = new HashSet<string>(keys, StringComparer.OrdinalIgnoreCase);
    }

    /// <summary>The trust record for the address the client was given.</summary>
    public KmsTrustRecord Record { get; }

    /// <summary>Why the last handshake was refused, or null (set by <see cref="Validate"/>, cleared by <see cref="Reset"/>).</summary>
    public string? LastFailure { get; private set; }

    /// <summary>
    /// The pin for <paramref name="address"/>, or null when <paramref name="store"/> holds no record for it: the TLS keys of
    /// its record and of every record with the same root CA that was checked at least as strictly (not with
    /// <c>--any-measurement</c> or a simulated TEE unless the address's own record was).
    /// </summary>
    /// <exception cref="InvalidDataException">The store is not a trust store.</exception>
    public static KmsTlsPin? For(KmsTrustStore store, Uri address)
    {
        ArgumentNullException.ThrowIfNull(store);
        if (store.Find(address.ToString()) is not { } record)
        {
            return null;
        }

        // Another address's key counts only if its record was checked at least as strictly: the root CA is public, so a
        // record made with --any-measurement (or of a simulated TEE) may bind it beside a key of a server that is no node
        // of this KMS, and must not widen a stricter record's pin.
        var keys = store.All()
            .Where(r => string.Equals(r.RootCaSha256, record.RootCaSha256, StringComparison.OrdinalIgnoreCase))
            .Where(r => r == record || AtLeastAsStrict(r, record))
            .Select(r => r.TlsSpkiSha256)
            .Append(record.TlsSpkiSha256);
        return new KmsTlsPin(record, keys);
    }

    private static bool AtLeastAsStrict(KmsTrustRecord other, KmsTrustRecord record) =>
        (!other.AnyMeasurement || record.AnyMeasurement) && (!other.Simulated || record.Simulated);

    /// <summary>Forgets the last failure (before a request, so a pooled connection's earlier refusal is not reported).</summary>
    public void Reset() => LastFailure = null;

    /// <summary>Checks one handshake: a certificate that names the host, with a TLS key attested for this KMS.</summary>
    public bool Validate(X509Certificate? certificate, SslPolicyErrors errors)
    {
        if (certificate is null)
        {
            LastFailure = "it presented no TLS certificate";
            return false;
        }

        // The pin replaces the trust store, not the host name check.
        if ((errors & (SslPolicyErrors.RemoteCertificateNameMismatch | SslPolicyErrors.RemoteCertificateNotAvailable)) != 0)
        {
            LastFailure = $"its TLS certificate does not match the host name ({errors})";
            return false;
        }

        using var presented = X509CertificateLoader.LoadCertificate(certificate.GetRawCertData());
        var key = Convert.ToHexStringLower(SHA256.HashData(presented.PublicKey.ExportSubjectPublicKeyInfo()));
        if (!_keys.Contains(key))
        {
            LastFailure = $"its TLS key (SPKI sha256 {key}) is not one `morph kms trust` attested for the KMS with root CA sha256 {Record.RootCaSha256}";
            return false;
        }

        LastFailure = null;
        return true;
    }
}
