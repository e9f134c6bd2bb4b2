using System.Net;
using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;
using Morphisms.Client.Trust;

namespace Morphisms.Client.Tests;

/// <summary>What the CRL-fetch tests' stand-in KMS nodes on 127.0.0.1 are: their TLS certificate and the record pinning them.</summary>
internal static class LoopbackKms
{
    /// <summary>A self-signed certificate for 127.0.0.1, as a KMS node with <c>--tls-self</c> or its own file has.</summary>
    public static X509Certificate2 SelfSignedTlsCertificate()
    {
        using var key = ECDsa.Create(ECCurve.NamedCurves.nistP256);
        var request = new CertificateRequest("CN=127.0.0.1", key, HashAlgorithmName.SHA256);
        var names = new SubjectAlternativeNameBuilder();
        names.AddIpAddress(IPAddress.Loopback);
        request.CertificateExtensions.Add(names.Build());
        using var certificate = request.CreateSelfSigned(DateTimeOffset.UtcNow.AddMinutes(-5), DateTimeOffset.UtcNow.AddDays(1));

        // Through PKCS#12, so SslStream can use the key as a server's.
        return X509CertificateLoader.LoadPkcs12(certificate.Export(X509ContentType.Pkcs12), null);
    }

    /// <summary>A trust record pinning the KMS at <paramref name="url"/>: its root CA and TLS key, a simulated SNP measurement.</summary>
    public static KmsTrustRecord TrustRecord(Uri url, X509Certificate2 rootCa, X509Certificate2 tls) => new()
    {
        KmsUrl = KmsTrustStore.Normalize(url.ToString()),
        RootCaPem = rootCa.ExportCertificatePem(),
        RootCaSha256 = Convert.ToHexStringLower(SHA256.HashData(rootCa.RawData)),
        TlsSpkiSha256 = Convert.ToHexStringLower(SHA256.HashData(tls.PublicKey.ExportSubjectPublicKeyInfo())),
        Tee = "snp",
        Measurement = "snp:" + new string('0', 96),
        ExpectedMeasurements = ["snp:" + new string('0', 96)],
        Simulated = true,
        VerifiedAt = DateTimeOffset.UtcNow,
    };
}
