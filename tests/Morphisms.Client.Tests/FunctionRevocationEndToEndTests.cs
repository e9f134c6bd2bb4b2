using System.Net;
using System.Net.Http.Json;
using System.Net.Security;
using System.Net.Sockets;
using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;
using System.Text;
using System.Text.Json.Nodes;
using Morphisms.Attestation;
using Morphisms.Attestation.Binding;
using Morphisms.Attestation.Simulated;
using Morphisms.Attestation.Trust;
using Morphisms.Client.Functions;
using Morphisms.Client.Trust;

namespace Morphisms.Client.Tests;

/// <summary>
/// A real KMS issues a function certificate at attest-login; deleting the function revokes it into <c>pki/</c>'s CRL,
/// which a client fetches without a token over TLS to the attested KMS key, and refuses the instance from then on.
/// </summary>
public sealed class FunctionRevocationEndToEndTests(DevKmsFixture fixture) : IClassFixture<DevKmsFixture>
{
    private static readonly byte[] FunctionMeasurement = SHA384.HashData("revocation end to end"u8);

    [Fact]
    public async Task A_deleted_functions_instance_is_refused_once_the_kms_revoked_its_certificate()
    {
        var trust = await TrustAsync();
        using var admin = Admin();
        const string Function = "crl-e2e";
        (await admin.PutAsJsonAsync($"v1/morphisms/functions/{Function}", new { simulated = new { snp = new[] { Hex.Of(FunctionMeasurement) } } })).EnsureSuccessStatusCode();
        using var key = ECDsa.Create(ECCurve.NamedCurves.nistP256);
        var (leaf, chain) = await LoginAsync(admin, Function, key);
        using var owned = leaf;
        await using var instance = new TlsTestServer(SslStreamCertificateContext.Create(leaf, [.. chain], offline: true),
            _ => Encoding.ASCII.GetBytes("HTTP/1.1 200 OK\r\nContent-Length: 6\r\nConnection: close\r\n\r\nsigned"));
        var expectation = new FunctionExpectation { Function = Function, Host = $"{Function}.fn.morphisms.local", AllowSimulated = true };

        var cache = new FunctionCrlCache();
        using (var http = Client(trust, expectation, instance.Endpoint.Port, cache))
        {
            Assert.Equal("signed", await http.GetStringAsync($"https://{expectation.Host}/"));
        }

        Assert.Equal(1, cache.Fetches);
        (await admin.DeleteAsync($"v1/morphisms/functions/{Function}")).EnsureSuccessStatusCode();

        // A client whose CRL is older than the max age (here: none yet) fetches it again and refuses the instance.
        IReadOnlyList<string>? refused = null;
        using (var http = Client(trust, expectation, instance.Endpoint.Port, new FunctionCrlCache(), f => refused = f))
        {
            await Assert.ThrowsAsync<HttpRequestException>(() => http.GetStringAsync($"https://{expectation.Host}/"));
        }

        Assert.Equal($"revocation: the certificate (serial {leaf.SerialNumber.ToLowerInvariant()}) is revoked on the KMS's CRL: its revision was retired or its function deleted",
            Assert.Single(refused!));
        Assert.Equal(1, instance.RequestsServed);
    }

    [Fact]
    public async Task After_an_intermediate_rotation_a_certificate_of_the_retiring_issuer_is_checked_against_that_issuers_crl()
    {
        var trust = await TrustAsync();
        using var admin = Admin();
        const string Function = "crl-rotated";
        (await admin.PutAsJsonAsync($"v1/morphisms/functions/{Function}", new { simulated = new { snp = new[] { Hex.Of(FunctionMeasurement) } } })).EnsureSuccessStatusCode();
        using var key = ECDsa.Create(ECCurve.NamedCurves.nistP256);
        var (leaf, chain) = await LoginAsync(admin, Function, key);
        using var owned = leaf;
        using var root = X509Certificate2.CreateFromPem(trust.RootCaPem);
        (await admin.PostAsJsonAsync("v1/pki/intermediate/rotate", new { })).EnsureSuccessStatusCode();
        var expectation = new FunctionExpectation { Function = Function, Host = $"{Function}.fn.morphisms.local", AllowSimulated = true };
        IReadOnlyList<string> Validate() => FunctionCertificateValidator.Validate(leaf, chain, root, expectation, DateTimeOffset.UtcNow, null,
            new FunctionRevocationChecker(new FunctionCrlCache(), new KmsCrlSource(trust, TimeSpan.FromSeconds(10)), TimeSpan.FromSeconds(30)), out _);

        // pki/crl is the new default issuer's: the leaf's own issuer's CRL is found through the issuer list.
        Assert.Empty(Validate());
        (await admin.DeleteAsync($"v1/morphisms/functions/{Function}")).EnsureSuccessStatusCode();
        Assert.Contains("is revoked on the KMS's CRL", Assert.Single(Validate()));
    }

    [Fact]
    public async Task A_kms_presenting_another_tls_key_than_the_attested_one_gives_no_crl()
    {
        var trust = await TrustAsync() with { TlsSpkiSha256 = new string('a', 64) };
        using var admin = Admin();
        const string Function = "crl-pin";
        (await admin.PutAsJsonAsync($"v1/morphisms/functions/{Function}", new { simulated = new { snp = new[] { Hex.Of(FunctionMeasurement) } } })).EnsureSuccessStatusCode();
        using var key = ECDsa.Create(ECCurve.NamedCurves.nistP256);
        var (leaf, chain) = await LoginAsync(admin, Function, key);
        using var owned = leaf;
        using var root = X509Certificate2.CreateFromPem(trust.RootCaPem);

        var refused = Assert.Single(FunctionCertificateValidator.Validate(leaf, chain, root,
            new FunctionExpectation { Function = Function, Host = $"{Function}.fn.morphisms.local", AllowSimulated = true }, DateTimeOffset.UtcNow, null,
            new FunctionRevocationChecker(new FunctionCrlCache(), new KmsCrlSource(trust, TimeSpan.FromSeconds(10)), TimeSpan.FromSeconds(30)), out _));
        Assert.Contains($"could be had from the KMS {trust.KmsUrl}: its TLS was refused: its TLS key (SPKI sha256 ", refused);
        Assert.Contains($"is not the one `morph kms trust` attested ({new string('a', 64)})", refused);
    }

    private async Task<KmsTrustRecord> TrustAsync()
    {
        var outcome = await KmsAttestationClient.VerifyAsync(fixture.Kms.BaseAddress!.ToString(), new KmsTrustOptions
        {
            Anchors = fixture.Tee.TrustedWith(TrustAnchors.Vendor),
            ExpectedMeasurements = [KmsMeasurementPin.Snp(DevKmsFixture.KmsMeasurement)],
        });
        Assert.True(outcome.Trusted, string.Join("; ", outcome.Failures));
        return outcome.Record!;
    }

    /// <summary>An instance's login: a simulated SNP report binding the KMS's nonce and <paramref name="key"/>, and its CSR.</summary>
    private async Task<(X509Certificate2 Leaf, List<X509Certificate2> Chain)> LoginAsync(HttpClient kms, string function, ECDsa key)
    {
        using var challenge = await kms.PostAsJsonAsync("v1/auth/attest/challenge", new { function });
        var nonce = Convert.FromBase64String((await challenge.EnsureSuccessStatusCode().Content.ReadFromJsonAsync<JsonObject>())!["data"]!["nonce"]!.GetValue<string>());
        var report = fixture.Tee.CreateSnpReport(new SimulatedSnpReportRequest
        {
            ReportData = ReportDataBinding.ForFunction(nonce, key.ExportSubjectPublicKeyInfo()),
            Measurement = FunctionMeasurement,
        });
        using var login = await kms.PostAsJsonAsync("v1/auth/attest/login", new
        {
            function,
            tee = "snp",
            evidence = Convert.ToBase64String(report),
            nonce = Convert.ToBase64String(nonce),
            csr = new CertificateRequest("CN=instance", key, HashAlgorithmName.SHA256).CreateSigningRequestPem(),
        });
        var body = await login.Content.ReadFromJsonAsync<JsonObject>();
        Assert.True(login.IsSuccessStatusCode, body?.ToJsonString());
        var data = body!["data"]!;
        using var certificate = X509Certificate2.CreateFromPem(data["certificate"]!.GetValue<string>());
        var chain = data["ca_chain"]!.AsArray().Select(c => X509Certificate2.CreateFromPem(c!.GetValue<string>()))
            .Where(c => c.SubjectName.RawData.AsSpan().SequenceEqual(c.IssuerName.RawData) == false).ToList();
        // Through PKCS#12, as an instance's TLS terminator loads its key, so SslStream can use it as a server certificate.
        using var withKey = certificate.CopyWithPrivateKey(key);
        return (X509CertificateLoader.LoadPkcs12(withKey.Export(X509ContentType.Pkcs12), null), chain);
    }

    /// <summary>The dev KMS's root token, over TLS to the certificate it serves.</summary>
    private HttpClient Admin()
    {
        var expected = fixture.Kms.TlsCertificate!.RawData;
        var handler = new SocketsHttpHandler();
        handler.SslOptions.RemoteCertificateValidationCallback = (_, certificate, _, _) => certificate is not null && certificate.GetRawCertData().AsSpan().SequenceEqual(expected);
        var http = new HttpClient(handler) { BaseAddress = fixture.Kms.BaseAddress };
        http.DefaultRequestHeaders.Add("X-Vault-Token", fixture.Kms.DevCredentials!.RootToken);
        return http;
    }

    private static HttpClient Client(KmsTrustRecord trust, FunctionExpectation expectation, int port, FunctionCrlCache cache, Action<IReadOnlyList<string>>? rejected = null)
    {
        // The default revocation check: CRLs from the trust record's KMS, required.
        var handler = FunctionHttpHandler.Create(trust, expectation, onRejected: rejected, chainCache: new VerifiedChainCache(), revocation: new FunctionRevocationOptions { Cache = cache });
        handler.ConnectCallback = async (_, ct) =>
        {
            var socket = new Socket(SocketType.Stream, ProtocolType.Tcp);
            await socket.ConnectAsync(new IPEndPoint(IPAddress.Loopback, port), ct);
            return new NetworkStream(socket, ownsSocket: true);
        };
        return new HttpClient(handler);
    }
}
