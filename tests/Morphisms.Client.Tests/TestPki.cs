using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;
using Morphisms.Attestation.Identity;

namespace Morphisms.Client.Tests;

/// <summary>A KMS-like PKI made in the test: root → intermediate → function leaf with the attested identity.</summary>
internal sealed class TestPki : IDisposable
{
    private readonly ECDsa _rootKey = ECDsa.Create(ECCurve.NamedCurves.nistP384);

    public TestPki()
    {
        var now = DateTimeOffset.UtcNow;
        var request = new CertificateRequest("CN=Test KMS Root CA", _rootKey, HashAlgorithmName.SHA384);
        request.CertificateExtensions.Add(new X509BasicConstraintsExtension(true, false, 0, true));
        request.CertificateExtensions.Add(new X509KeyUsageExtension(X509KeyUsageFlags.KeyCertSign | X509KeyUsageFlags.CrlSign, true));
        Root = request.CreateSelfSigned(now.AddDays(-1), now.AddYears(5));
        (Intermediate, IntermediateKey) = NewIntermediate("CN=Test KMS Intermediate 1");
    }

    public X509Certificate2 Root { get; }

    public X509Certificate2 Intermediate { get; private set; }

    public ECDsa IntermediateKey { get; private set; }

    public (X509Certificate2 Certificate, ECDsa Key) NewIntermediate(string subject)
    {
        var key = ECDsa.Create(ECCurve.NamedCurves.nistP384);
        var request = new CertificateRequest(subject, key, HashAlgorithmName.SHA384);
        request.CertificateExtensions.Add(new X509BasicConstraintsExtension(true, true, 0, true));
        request.CertificateExtensions.Add(new X509KeyUsageExtension(X509KeyUsageFlags.KeyCertSign | X509KeyUsageFlags.CrlSign, true));
        var now = DateTimeOffset.UtcNow;
        var certificate = request.Create(Root.SubjectName, X509SignatureGenerator.CreateForECDsa(_rootKey), now.AddDays(-1), now.AddYears(1), RandomNumberGenerator.GetBytes(8));
        return (certificate, key);
    }

    public void RotateIntermediate(string subject = "CN=Test KMS Intermediate 2")
    {
        (Intermediate, IntermediateKey) = NewIntermediate(subject);
    }

    /// <summary>A function certificate with its private key, as attest-login would issue it.</summary>
    public X509Certificate2 Leaf(string function, string host, byte[] measurement, bool simulated = true, bool withIdentity = true, TimeSpan? lifetime = null, string tee = "snp")
    {
        using var key = ECDsa.Create(ECCurve.NamedCurves.nistP256);
        var request = new CertificateRequest($"CN={host}", key, HashAlgorithmName.SHA256);
        var san = new SubjectAlternativeNameBuilder();
        san.AddDnsName(host);
        request.CertificateExtensions.Add(san.Build());
        request.CertificateExtensions.Add(new X509EnhancedKeyUsageExtension([new Oid("1.3.6.1.5.5.7.3.1")], false));
        if (withIdentity)
        {
            request.CertificateExtensions.Add(new AttestedIdentityExtension(tee, measurement, function, 1, SHA256.HashData(measurement), simulated).ToExtension());
        }

        var now = DateTimeOffset.UtcNow;
        using var certificate = request.Create(Intermediate.SubjectName, X509SignatureGenerator.CreateForECDsa(IntermediateKey), now.AddMinutes(-5), now + (lifetime ?? TimeSpan.FromHours(1)), RandomNumberGenerator.GetBytes(8));
        using var withKey = certificate.CopyWithPrivateKey(key);
        return X509CertificateLoader.LoadPkcs12(withKey.Export(X509ContentType.Pkcs12), null);
    }

    /// <summary>
    /// A CRL of the current intermediate listing <paramref name="revoked"/>, as the KMS's <c>pki/</c> mount builds it:
    /// thisUpdate 30 s back, nextUpdate 72 h on unless given; <paramref name="signer"/> signs instead of the intermediate's key.
    /// </summary>
    public byte[] Crl(IEnumerable<X509Certificate2>? revoked = null, DateTimeOffset? thisUpdate = null, DateTimeOffset? nextUpdate = null, ECDsa? signer = null)
    {
        var builder = new CertificateRevocationListBuilder();
        foreach (var certificate in revoked ?? [])
        {
            builder.AddEntry(certificate, DateTimeOffset.UtcNow.AddMinutes(-1));
        }

        var from = thisUpdate ?? DateTimeOffset.UtcNow.AddSeconds(-30);
        return builder.Build(
            Intermediate.SubjectName,
            X509SignatureGenerator.CreateForECDsa(signer ?? IntermediateKey),
            System.Numerics.BigInteger.One,
            nextUpdate ?? from.AddHours(72),
            HashAlgorithmName.SHA384,
            X509AuthorityKeyIdentifierExtension.CreateFromCertificate(Intermediate, includeKeyIdentifier: false, includeIssuerAndSerial: true),
            from);
    }

    public void Dispose()
    {
        Root.Dispose();
        Intermediate.Dispose();
        IntermediateKey.Dispose();
        _rootKey.Dispose();
    }
}
