using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;
using System.Text;
using Morphisms.Attestation.Identity;
using Morphisms.Kms.Barrier;

namespace Morphisms.Kms.Pki;

/// <summary>
/// The KMS root CA: the certificate clients pin after attesting the KMS, and (once the PKI engine exists) the
/// root of every function certificate. Created at the first unseal and kept under the barrier at
/// <see cref="StoragePath"/>, so untrusted storage can neither read its key nor swap the certificate the KMS
/// attests to. Only the certificate stays in memory; the key is read when something needs to sign.
/// </summary>
internal sealed class KmsRootCa : IDisposable
{
    /// <summary>Where the certificate and key are stored.</summary>
    public const string StoragePath = "core/root-ca";

    private static readonly TimeSpan Validity = TimeSpan.FromDays(3650);

    private KmsRootCa(X509Certificate2 certificate)
    {
        Certificate = certificate;
        Sha256 = Convert.ToHexStringLower(SHA256.HashData(certificate.RawData));
    }

    /// <summary>The self-signed CA certificate (public part only).</summary>
    public X509Certificate2 Certificate { get; }

    /// <summary>
    /// Lowercase hex SHA-256 of the certificate's DER: the fingerprint an operator publishes for
    /// <c>morph kms trust --expect-root-ca</c>. Kept as text so it can be read after the certificate is disposed.
    /// </summary>
    public string Sha256 { get; }

    /// <summary>The certificate in PEM.</summary>
    public string CertificatePem => Certificate.ExportCertificatePem();

    /// <summary>Loads the CA, creating it on first use.</summary>
    public static async Task<KmsRootCa> LoadOrCreateAsync(ISecureStorage storage, string clusterName, TimeProvider time, CancellationToken ct)
    {
        var stored = await storage.GetJsonAsync<StoredCa>(StoragePath, ct).ConfigureAwait(false);
        if (stored is null)
        {
            stored = Create(clusterName, time.GetUtcNow());
            await storage.PutJsonAsync(StoragePath, stored, ct).ConfigureAwait(false);
        }

        return new KmsRootCa(X509Certificate2.CreateFromPem(stored.Certificate));
    }

    /// <summary>
    /// The root's certificate and signing key, read from the barrier for one signing operation (the PKI mount at
    /// <c>pki/</c> signs its intermediates with it); the caller disposes it.
    /// </summary>
    public static async Task<CaKey> LoadSignerAsync(ISecureStorage storage, CancellationToken ct)
    {
        var stored = await storage.GetJsonAsync<StoredCa>(StoragePath, ct).ConfigureAwait(false)
            ?? throw new BarrierException("the KMS root CA is missing from storage");
        return CaKey.FromPem(KmsRootIssuerId, stored.Certificate, stored.PrivateKey);
    }

    /// <summary>The issuer id under which PKI mounts list the KMS root.</summary>
    public const string KmsRootIssuerId = "kms-root";

    /// <inheritdoc />
    public void Dispose() => Certificate.Dispose();

    private static StoredCa Create(string clusterName, DateTimeOffset now)
    {
        using var key = ECDsa.Create(ECCurve.NamedCurves.nistP384);
        var subject = new X500DistinguishedNameBuilder();
        subject.AddOrganizationName("Morphisms KMS " + clusterName);
        subject.AddCommonName("Morphisms KMS Root CA");
        var request = new CertificateRequest(subject.Build(), key, HashAlgorithmName.SHA384);
        request.CertificateExtensions.Add(new X509BasicConstraintsExtension(certificateAuthority: true, hasPathLengthConstraint: false, pathLengthConstraint: 0, critical: true));
        request.CertificateExtensions.Add(new X509KeyUsageExtension(X509KeyUsageFlags.KeyCertSign | X509KeyUsageFlags.CrlSign, critical: true));
        request.CertificateExtensions.Add(new X509SubjectKeyIdentifierExtension(request.PublicKey, critical: false));

        // So a KMS pin set to this root (which also signs function and pki/ role certificates) is refused, not trusted.
        request.CertificateExtensions.Add(KmsPkiCaMarker.ToExtension());
        using var certificate = request.CreateSelfSigned(now.AddHours(-1), now + Validity);
        return new StoredCa(certificate.ExportCertificatePem(), key.ExportPkcs8PrivateKeyPem());
    }

    /// <summary>The stored form: PEM certificate and PKCS#8 PEM key.</summary>
    private sealed record StoredCa(string Certificate, string PrivateKey)
    {
        // A record's ToString prints every property: the CA's private key stays out of it.
        private bool PrintMembers(StringBuilder builder)
        {
            builder.Append("Certificate = ").Append(Certificate).Append(", PrivateKey = [redacted]");
            return true;
        }
    }
}
