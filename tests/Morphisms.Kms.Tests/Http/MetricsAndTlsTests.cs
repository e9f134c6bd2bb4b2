using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;
using Morphisms.Attestation.Identity;
using Morphisms.Attestation.Trust;

namespace Morphisms.Kms.Tests.Http;

public class MetricsAndTlsTests
{
    [Fact]
    public async Task Prometheus_metrics_count_requests_by_route_class_and_show_the_seal()
    {
        await using var kms = await TestKms.StartUnsealedAsync();
        var c = kms.Client;
        (await c.PostAsync("secret/data/private-name", new { data = new { v = 1 } })).Expect(200);
        (await c.GetAsync("secret/data/private-name")).Expect(200);
        (await c.GetAsync("sys/metrics?format=prometheus", "")).Expect(403);
        var text = (await c.GetAsync("sys/metrics?format=prometheus")).Expect(200).Raw;

        Assert.Contains("kms_http_requests_total{class=\"kv/data\",method=\"POST\",code=\"200\"} 1", text, StringComparison.Ordinal);
        Assert.Contains("kms_http_requests_total{class=\"kv/data\",method=\"GET\",code=\"200\"} 1", text, StringComparison.Ordinal);
        Assert.Contains("kms_http_request_duration_seconds_bucket{class=\"kv/data\",le=\"+Inf\"} 2", text, StringComparison.Ordinal);
        Assert.Contains("kms_http_request_duration_seconds_count{class=\"sys/unseal\"}", text, StringComparison.Ordinal);
        Assert.Contains("kms_sealed 0", text, StringComparison.Ordinal);
        Assert.Contains("# TYPE kms_http_request_duration_seconds histogram", text, StringComparison.Ordinal);
        Assert.DoesNotContain("private-name", text, StringComparison.Ordinal);
        Assert.Contains("format", (await c.GetAsync("sys/metrics?format=json")).Expect(400).Errors[0], StringComparison.Ordinal);
    }

    [Fact]
    public async Task Sqlite_commits_are_timed_as_a_histogram_with_the_transactions_they_carried()
    {
        var dir = Directory.CreateTempSubdirectory("kms-metrics-").FullName;
        try
        {
            await using var kms = await TestKms.StartAsync(storageSpec: "sqlite:" + Path.Combine(dir, "kms.db"));
            await kms.InitAsync(1, 1);
            await kms.UnsealAsync();
            var before = Committed((await kms.Client.GetAsync("sys/metrics?format=prometheus")).Expect(200).Raw);
            await Task.WhenAll(Enumerable.Range(0, 8).Select(i => kms.Client.PostAsync($"secret/data/k{i}", new { data = new { v = i } })));
            var text = (await kms.Client.GetAsync("sys/metrics?format=prometheus")).Expect(200).Raw;

            Assert.Contains("# TYPE kms_storage_commit_duration_seconds histogram", text, StringComparison.Ordinal);
            Assert.Matches("kms_storage_commit_duration_seconds_bucket\\{le=\"\\+Inf\"\\} [1-9]", text);
            Assert.Matches("kms_storage_commit_duration_seconds_count [1-9]", text);

            // Every KV write is at least one transaction; concurrent ones may share a commit.
            Assert.True(Committed(text) - before >= 8, text);
        }
        finally
        {
            Directory.Delete(dir, recursive: true);
        }
    }

    private static long Committed(string metrics) =>
        long.Parse(System.Text.RegularExpressions.Regex.Match(metrics, "kms_storage_committed_transactions_total (\\d+)").Groups[1].Value, System.Globalization.CultureInfo.InvariantCulture);

    [Fact]
    public async Task Metrics_can_be_served_without_a_token_even_while_sealed()
    {
        await using var kms = await TestKms.StartAsync(o => o with { UnauthenticatedMetrics = true });
        var text = (await kms.Client.GetAsync("sys/metrics")).Expect(200).Raw;
        Assert.Contains("kms_sealed 1", text, StringComparison.Ordinal);
        Assert.Contains("kms_initialized 0", text, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Self_signed_tls_serves_the_api_to_a_client_that_pins_the_certificate()
    {
        await using var server = new KmsServer(new KmsServerOptions { Listen = "127.0.0.1:0", Storage = "inmem", Tls = KmsTlsOptions.SelfSigned, WarningWriter = TextWriter.Null });
        await server.StartAsync();
        Assert.Equal("https", server.BaseAddress!.Scheme);
        var pinned = server.TlsCertificate!.GetCertHashString();

        using var handler = new HttpClientHandler
        {
            ServerCertificateCustomValidationCallback = (_, cert, _, errors) => cert is not null && cert.GetCertHashString() == pinned,
        };
        using var http = new HttpClient(handler) { BaseAddress = server.BaseAddress };
        var response = await http.GetAsync("/v1/sys/health");
        Assert.Equal(501, (int)response.StatusCode);

        using var strict = new HttpClient { BaseAddress = server.BaseAddress };
        await Assert.ThrowsAsync<HttpRequestException>(() => strict.GetAsync("/v1/sys/health"));
        Assert.Contains(server.TlsCertificate.Extensions.OfType<X509SubjectAlternativeNameExtension>().Single().EnumerateIPAddresses(), ip => ip.ToString() == "127.0.0.1");
    }

    [Fact]
    public async Task Tls_from_pem_files_serves_the_given_certificate()
    {
        var dir = Directory.CreateTempSubdirectory("kms-tls-").FullName;
        try
        {
            using var key = System.Security.Cryptography.ECDsa.Create();
            var request = new CertificateRequest("CN=kms.test", key, System.Security.Cryptography.HashAlgorithmName.SHA256);
            using var cert = request.CreateSelfSigned(DateTimeOffset.UtcNow.AddDays(-1), DateTimeOffset.UtcNow.AddDays(1));
            var certFile = Path.Combine(dir, "cert.pem");
            var keyFile = Path.Combine(dir, "key.pem");
            await File.WriteAllTextAsync(certFile, cert.ExportCertificatePem());
            await File.WriteAllTextAsync(keyFile, key.ExportPkcs8PrivateKeyPem());

            await using var server = new KmsServer(new KmsServerOptions { Listen = "127.0.0.1:0", Storage = "inmem", Tls = KmsTlsOptions.FromFiles(certFile, keyFile), WarningWriter = TextWriter.Null });
            await server.StartAsync();
            string? seen = null;
            using var handler = new HttpClientHandler { ServerCertificateCustomValidationCallback = (_, c, _, _) => (seen = c?.Thumbprint) is not null };
            using var http = new HttpClient(handler) { BaseAddress = server.BaseAddress };
            Assert.Equal(501, (int)(await http.GetAsync("/v1/sys/health")).StatusCode);
            Assert.Equal(cert.Thumbprint, seen);
        }
        finally
        {
            Directory.Delete(dir, recursive: true);
        }
    }

    [Fact]
    public async Task Tls_from_a_ca_issued_chain_is_pinned_at_the_issuing_ca_which_it_serves_and_never_at_the_root()
    {
        var dir = Directory.CreateTempSubdirectory("kms-tls-chain-").FullName;
        try
        {
            using var rootKey = ECDsa.Create(ECCurve.NamedCurves.nistP256);
            var rootRequest = new CertificateRequest("CN=Test Enterprise Root", rootKey, HashAlgorithmName.SHA256);
            rootRequest.CertificateExtensions.Add(new X509BasicConstraintsExtension(true, false, 0, true));
            using var root = rootRequest.CreateSelfSigned(DateTimeOffset.UtcNow.AddDays(-1), DateTimeOffset.UtcNow.AddDays(2));
            using var caKey = ECDsa.Create(ECCurve.NamedCurves.nistP256);
            var caRequest = new CertificateRequest("CN=Test KMS CA", caKey, HashAlgorithmName.SHA256);
            caRequest.CertificateExtensions.Add(new X509BasicConstraintsExtension(true, false, 0, true));
            using var ca = caRequest.Create(root, DateTimeOffset.UtcNow.AddHours(-12), DateTimeOffset.UtcNow.AddDays(1), RandomNumberGenerator.GetBytes(8));
            using var caWithKey = ca.CopyWithPrivateKey(caKey);
            using var key = ECDsa.Create(ECCurve.NamedCurves.nistP256);
            var request = new CertificateRequest("CN=kms.test", key, HashAlgorithmName.SHA256);
            var san = new SubjectAlternativeNameBuilder();
            san.AddIpAddress(System.Net.IPAddress.Loopback);
            request.CertificateExtensions.Add(san.Build());
            using var leaf = request.Create(caWithKey, DateTimeOffset.UtcNow.AddHours(-1), DateTimeOffset.UtcNow.AddHours(12), RandomNumberGenerator.GetBytes(8));

            // The whole chain in the file, as an operator would write it: the root is still not sent.
            var certFile = Path.Combine(dir, "kms.pem");
            var keyFile = Path.Combine(dir, "kms.key");
            await File.WriteAllTextAsync(certFile, leaf.ExportCertificatePem() + "\n" + ca.ExportCertificatePem() + "\n" + root.ExportCertificatePem());
            await File.WriteAllTextAsync(keyFile, key.ExportPkcs8PrivateKeyPem());
            await using var server = new KmsServer(new KmsServerOptions { Listen = "127.0.0.1:0", Storage = "inmem", Tls = KmsTlsOptions.FromFiles(certFile, keyFile), WarningWriter = TextWriter.Null });
            await server.StartAsync();

            var atCa = new KmsPin(SHA256.HashData(ca.RawData), TimeProvider.System);
            using (var http = Pinned(server, atCa))
            {
                Assert.Equal(501, (int)(await http.GetAsync("/v1/sys/health")).StatusCode);
            }

            var atRoot = new KmsPin(SHA256.HashData(root.RawData), TimeProvider.System);
            using (var http = Pinned(server, atRoot))
            {
                await Assert.ThrowsAsync<HttpRequestException>(() => http.GetAsync("/v1/sys/health"));
                Assert.Contains("pinned SHA-256", atRoot.LastFailure);
            }
        }
        finally
        {
            Directory.Delete(dir, recursive: true);
        }
    }

    [Fact]
    public async Task Tls_issued_under_a_kms_pki_ca_is_warned_about_at_start()
    {
        var dir = Directory.CreateTempSubdirectory("kms-tls-pki-").FullName;
        try
        {
            // A CA marked like the KMS's PKI root (what pki/issue's ca_chain holds), and a KMS certificate from it.
            using var caKey = ECDsa.Create(ECCurve.NamedCurves.nistP256);
            var caRequest = new CertificateRequest("CN=Morphisms KMS Root CA", caKey, HashAlgorithmName.SHA256);
            caRequest.CertificateExtensions.Add(new X509BasicConstraintsExtension(true, false, 0, true));
            caRequest.CertificateExtensions.Add(KmsPkiCaMarker.ToExtension());
            using var ca = caRequest.CreateSelfSigned(DateTimeOffset.UtcNow.AddDays(-1), DateTimeOffset.UtcNow.AddDays(2));
            using var key = ECDsa.Create(ECCurve.NamedCurves.nistP256);
            using var leaf = new CertificateRequest("CN=kms.test", key, HashAlgorithmName.SHA256).Create(ca, DateTimeOffset.UtcNow.AddHours(-1), DateTimeOffset.UtcNow.AddHours(12), RandomNumberGenerator.GetBytes(8));
            var certFile = Path.Combine(dir, "kms.pem");
            var keyFile = Path.Combine(dir, "kms.key");
            await File.WriteAllTextAsync(keyFile, key.ExportPkcs8PrivateKeyPem());

            async Task<string> WarningsWith(string pem)
            {
                await File.WriteAllTextAsync(certFile, pem);
                using var warnings = new StringWriter();
                await using var server = new KmsServer(new KmsServerOptions { Listen = "127.0.0.1:0", Storage = "inmem", Tls = KmsTlsOptions.FromFiles(certFile, keyFile), WarningWriter = warnings });
                await server.StartAsync();
                return warnings.ToString();
            }

            var warned = await WarningsWith(leaf.ExportCertificatePem() + "\n" + ca.ExportCertificatePem());
            Assert.Contains("WARNING! the KMS's TLS certificate chain contains 'CN=Morphisms KMS Root CA', a KMS PKI root CA", warned, StringComparison.Ordinal);
            Assert.DoesNotContain("KMS PKI root CA", await WarningsWith(leaf.ExportCertificatePem()), StringComparison.Ordinal);
        }
        finally
        {
            Directory.Delete(dir, recursive: true);
        }
    }

    private static HttpClient Pinned(KmsServer server, KmsPin pin)
    {
        var handler = new SocketsHttpHandler();
        pin.ApplyTo(handler.SslOptions);
        return new HttpClient(handler) { BaseAddress = server.BaseAddress };
    }

    [Fact]
    public void Plain_http_is_refused_off_loopback_and_bad_options_are_named()
    {
        Assert.Contains("non-loopback", Assert.Throws<ArgumentException>(() => new KmsServer(new KmsServerOptions { Listen = "0.0.0.0:0", Storage = "inmem" })).Message, StringComparison.Ordinal);
        Assert.Contains("HOST:PORT", Assert.Throws<ArgumentException>(() => new KmsServer(new KmsServerOptions { Listen = "8200", Storage = "inmem" })).Message, StringComparison.Ordinal);
        Assert.Contains("IP address", Assert.Throws<ArgumentException>(() => new KmsServer(new KmsServerOptions { Listen = "example.org:8200", Storage = "inmem" })).Message, StringComparison.Ordinal);
        Assert.Contains("unsupported storage", Assert.Throws<ArgumentException>(() => new KmsServer(new KmsServerOptions { Storage = "redis:x" })).Message, StringComparison.Ordinal);
        Assert.Throws<ArgumentException>(() => new KmsServer(new KmsServerOptions { Storage = "inmem", Tls = new KmsTlsOptions(KmsTlsMode.Files) }));

        // Standbys redirect clients to the API address: a node that serves TLS is not to be reached in clear.
        Assert.Contains("must be https", Assert.Throws<ArgumentException>(() => new KmsServer(new KmsServerOptions
        {
            Storage = "postgres",
            Tls = KmsTlsOptions.SelfSigned,
            ApiAddress = new Uri("http://kms-1:8200"),
        })).Message, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData(0, "must be positive")]
    [InlineData(-60, "must be positive")]
    [InlineData(30, "must be at least 1m0s: every instance re-attests")]
    [InlineData(7200, "(2h0m0s) must not exceed the max token TTL (1h0m0s)")]
    public void A_function_certificate_max_ttl_under_a_minute_or_over_the_max_token_ttl_is_refused(int seconds, string problem)
    {
        var options = new KmsServerOptions { Storage = "inmem", MaxTokenTtl = TimeSpan.FromHours(1), FunctionCertificateMaxTtl = TimeSpan.FromSeconds(seconds) };
        var error = Assert.Throws<ArgumentException>(() => new KmsServer(options));
        Assert.Contains("function certificate max TTL", error.Message, StringComparison.Ordinal);
        Assert.Contains(problem, error.Message, StringComparison.Ordinal);
    }
}
