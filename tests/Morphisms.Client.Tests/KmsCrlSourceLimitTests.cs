using System.Net;
using System.Net.Security;
using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;
using System.Text;
using Morphisms.Client.Functions;
using Morphisms.Client.Trust;

namespace Morphisms.Client.Tests;

/// <summary>
/// The CRL fetch reads at most 8 MiB of an answer, and says so: an answer over it was reported as a KMS that "could not be
/// reached", with .NET's buffer message.
/// </summary>
public sealed class KmsCrlSourceLimitTests : IDisposable
{
    private readonly TestPki _pki = new();
    private readonly X509Certificate2 _tls = SelfSigned();

    public void Dispose()
    {
        _pki.Dispose();
        _tls.Dispose();
    }

    [Fact]
    public async Task A_crl_answer_over_the_limit_is_refused_naming_the_limit()
    {
        var body = new byte[8 * 1024 * 1024 + 1];
        await using var kms = new TlsTestServer(SslStreamCertificateContext.Create(_tls, null), _ =>
            [.. Encoding.ASCII.GetBytes($"HTTP/1.1 200 OK\r\nContent-Type: application/pkix-crl\r\nContent-Length: {body.Length}\r\nConnection: close\r\n\r\n"), .. body]);
        var source = new KmsCrlSource(Record(kms.Endpoint.Port), TimeSpan.FromSeconds(10));

        var refused = await Assert.ThrowsAsync<CrlFetchException>(() => source.FetchDefaultAsync(CancellationToken.None));

        Assert.Equal("its answer to GET /v1/pki/crl/pem is larger than the 8388608-byte (8 MiB) limit, far above any CRL it should serve; not read further", refused.Message);
    }

    private KmsTrustRecord Record(int port) => new()
    {
        KmsUrl = KmsTrustStore.Normalize($"https://127.0.0.1:{port}"),
        RootCaPem = _pki.Root.ExportCertificatePem(),
        RootCaSha256 = Convert.ToHexStringLower(SHA256.HashData(_pki.Root.RawData)),
        TlsSpkiSha256 = Convert.ToHexStringLower(SHA256.HashData(_tls.PublicKey.ExportSubjectPublicKeyInfo())),
        Tee = "snp",
        Measurement = "snp:" + new string('0', 96),
        ExpectedMeasurements = ["snp:" + new string('0', 96)],
        Simulated = true,
        VerifiedAt = DateTimeOffset.UtcNow,
    };

    /// <summary>A self-signed certificate for 127.0.0.1, as a KMS with <c>--tls-self</c> has.</summary>
    private static X509Certificate2 SelfSigned()
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
}
