using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;
using System.Text.Json.Nodes;
using Microsoft.Extensions.Time.Testing;
using Morphisms.Attestation;
using Morphisms.Attestation.Binding;
using Morphisms.Attestation.Trust;

namespace Morphisms.Kms.Tests.SelfAttestation;

public class SelfAttestationTests
{
    [Fact]
    public async Task A_client_verifies_the_kms_evidence_against_the_tls_certificate_it_saw_and_the_served_root_ca()
    {
        await using var server = await StartTlsAsync();
        X509Certificate2? seen = null;
        using var handler = new HttpClientHandler
        {
            // Before attestation nothing is trusted: take the certificate as presented, then check it is the attested one.
            ServerCertificateCustomValidationCallback = (_, certificate, _, _) => (seen ??= certificate is null ? null : X509CertificateLoader.LoadCertificate(certificate.RawData)) is not null,
        };
        using var http = new HttpClient(handler) { BaseAddress = server.BaseAddress };
        var nonce = RandomNumberGenerator.GetBytes(32);

        var body = JsonNode.Parse(await http.GetStringAsync($"/v1/sys/attestation?nonce={Convert.ToHexStringLower(nonce)}"))!;
        var data = body["data"]!;
        Assert.Equal("snp", data["tee"]!.GetValue<string>());
        Assert.True(data["simulated"]!.GetValue<bool>());
        Assert.Contains(body["warnings"]!.AsArray(), w => w!.GetValue<string>().Contains("simulated", StringComparison.Ordinal));

        using var rootCa = X509Certificate2.CreateFromPem(data["root_ca"]!.GetValue<string>());
        Assert.True(rootCa.Extensions.OfType<X509BasicConstraintsExtension>().Single().CertificateAuthority);
        var expected = ReportDataBinding.ForKms(nonce, seen!.PublicKey.ExportSubjectPublicKeyInfo(), rootCa.RawData);
        var result = await EvidenceVerifier.VerifyAsync(new EvidenceVerificationRequest
        {
            Tee = TeeType.Snp,
            Evidence = Convert.FromBase64String(data["evidence"]!.GetValue<string>()),
            SnpCertificate = System.Text.Encoding.ASCII.GetBytes(data["vcek"]!.GetValue<string>()),
            Anchors = SimulatedTees.Trusted.TrustedWith(TrustAnchors.Vendor),
            Time = new FakeTimeProvider(SimulatedTees.Epoch),
            ExpectedReportData = expected,
            ExpectedMeasurement = SimulatedTees.KmsMeasurement,
        });
        Assert.True(result.Accepted, string.Join("; ", result.Failures));
        Assert.True(result.Simulated);

        // With vendor roots only the same evidence is refused: the simulated root is never trusted by default.
        var vendorOnly = await EvidenceVerifier.VerifyAsync(new EvidenceVerificationRequest
        {
            Tee = TeeType.Snp,
            Evidence = Convert.FromBase64String(data["evidence"]!.GetValue<string>()),
            SnpCertificate = Convert.FromBase64String(data["endorsements"]!.GetValue<string>()),
            Time = new FakeTimeProvider(SimulatedTees.Epoch),
        });
        Assert.False(vendorOnly.Accepted);
    }

    /// <summary>
    /// The root certificate is public, so binding it proves nothing about who holds its key: the KMS signs the nonce, its
    /// TLS key and the root with the root's key (<see cref="KmsRootCaProof"/>), and that signature verifies with the
    /// served root's public key for this nonce and this TLS key only. Sealed, the KMS has neither root nor key to show:
    /// it answers 503 and presents no root, so there is nothing to prove.
    /// </summary>
    [Fact]
    public async Task The_kms_proves_it_holds_the_root_ca_key_over_the_nonce_and_its_tls_key_and_presents_no_root_while_sealed()
    {
        await using var kms = await TestKms.StartUnsealedAsync(o => SimulatedTees.TrustingSimulated(o with { Tls = KmsTlsOptions.SelfSigned }));
        var nonce = RandomNumberGenerator.GetBytes(32);
        var tlsSpki = kms.Server.TlsCertificate!.PublicKey.ExportSubjectPublicKeyInfo();

        var data = (await kms.Client.GetAsync($"sys/attestation?nonce={Convert.ToHexStringLower(nonce)}", "")).Expect(200).Data;
        using var rootCa = X509Certificate2.CreateFromPem(data["root_ca"]!.GetValue<string>());
        var proof = Convert.FromBase64String(data["root_ca_proof"]!.GetValue<string>());
        Assert.Equal(KmsRootCaProof.Description, data["root_ca_proof_binding"]!.GetValue<string>());
        Assert.True(KmsRootCaProof.Verify(rootCa, nonce, tlsSpki, proof));
        using var p384 = rootCa.GetECDsaPublicKey()!;
        Assert.True(p384.VerifyData(KmsRootCaProof.Statement(nonce, tlsSpki, rootCa.RawData), proof, HashAlgorithmName.SHA384, DSASignatureFormat.Rfc3279DerSequence));

        // Bound to this nonce and this TLS key: a relay's own key, or another request's nonce, does not verify.
        using var relayKey = ECDsa.Create(ECCurve.NamedCurves.nistP256);
        Assert.False(KmsRootCaProof.Verify(rootCa, nonce, relayKey.ExportSubjectPublicKeyInfo(), proof));
        Assert.False(KmsRootCaProof.Verify(rootCa, RandomNumberGenerator.GetBytes(32), tlsSpki, proof));

        (await kms.Client.PutAsync("sys/seal")).Expect(204);
        var sealedAnswer = (await kms.Client.GetAsync($"sys/attestation?nonce={Convert.ToHexStringLower(nonce)}", "")).Expect(503);
        Assert.DoesNotContain("root_ca", sealedAnswer.Raw, StringComparison.Ordinal);
        Assert.DoesNotContain("BEGIN CERTIFICATE", sealedAnswer.Raw, StringComparison.Ordinal);
    }

    [Fact]
    public async Task The_root_ca_survives_a_restart_of_the_kms()
    {
        var dir = Directory.CreateTempSubdirectory("kms-rootca-").FullName;
        try
        {
            var storage = "sqlite:" + Path.Combine(dir, "kms.db");
            string first;
            await using (var server = await StartTlsAsync(storage))
            {
                first = await RootCaAsync(server);
            }

            await using (var server = await StartTlsAsync(storage))
            {
                Assert.Equal(first, await RootCaAsync(server));
            }
        }
        finally
        {
            Directory.Delete(dir, recursive: true);
        }
    }

    [Theory]
    [InlineData("")]
    [InlineData("?nonce=")]
    [InlineData("?nonce=00112233445566778899aabbccddee")]
    [InlineData("?nonce=0011223344556677889")]
    [InlineData("?nonce=zz112233445566778899aabbccddeeff")]
    public async Task Bad_nonces_are_400s(string query)
    {
        await using var server = await StartTlsAsync();
        using var http = Client(server);
        var response = await http.GetAsync("/v1/sys/attestation" + query);
        Assert.Equal(400, (int)response.StatusCode);
        Assert.Contains("nonce", await response.Content.ReadAsStringAsync(), StringComparison.Ordinal);
    }

    [Fact]
    public async Task Without_tls_there_is_nothing_to_bind_and_the_kms_says_so()
    {
        await using var kms = await TestKms.StartUnsealedAsync(SimulatedTees.TrustingSimulated);
        var result = (await kms.Client.GetAsync($"sys/attestation?nonce={new string('a', 64)}", "")).Expect(501);
        Assert.Contains("plain HTTP", result.Errors.Single(), StringComparison.Ordinal);
    }

    private static async Task<string> RootCaAsync(KmsServer server)
    {
        using var http = Client(server);
        var body = JsonNode.Parse(await http.GetStringAsync($"/v1/sys/attestation?nonce={new string('0', 32)}"))!;
        return body["data"]!["root_ca"]!.GetValue<string>();
    }

    private static HttpClient Client(KmsServer server) =>
        new(new HttpClientHandler { ServerCertificateCustomValidationCallback = (_, _, _, _) => true }, disposeHandler: true) { BaseAddress = server.BaseAddress };

    private static async Task<KmsServer> StartTlsAsync(string storage = "inmem")
    {
        var options = SimulatedTees.TrustingSimulated(new KmsServerOptions
        {
            Listen = "127.0.0.1:0",
            Storage = storage,
            Tls = KmsTlsOptions.SelfSigned,
            Dev = true,
            DevKeyFile = storage == "inmem" ? null : storage["sqlite:".Length..] + ".dev-keys.json",
            TimeProvider = new FakeTimeProvider(SimulatedTees.Epoch),
            WarningWriter = TextWriter.Null,
        });
        var server = new KmsServer(options);
        await server.StartAsync();
        return server;
    }
}
