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
    private readonly X509Certificate2 _tls = LoopbackKms.SelfSignedTlsCertificate();

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

    private KmsTrustRecord Record(int port) => LoopbackKms.TrustRecord(new Uri($"https://127.0.0.1:{port}"), _pki.Root, _tls);
}
