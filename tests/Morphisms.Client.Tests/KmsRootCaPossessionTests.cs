using System.Net.Security;
using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using Morphisms.Attestation.Binding;
using Morphisms.Attestation.Simulated;
using Morphisms.Attestation.Trust;
using Morphisms.Client.Trust;
using Morphisms.Kms;

namespace Morphisms.Client.Tests;

/// <summary>
/// The root CA a KMS presents is public (<c>sys/attestation</c> serves it to anyone), so the evidence binding it beside a
/// TLS key proves only that the answering TEE knows the certificate. With <c>--any-measurement</c> no measured code
/// vouches for the root either: a stand-in KMS in an attested TEE (here the same simulated TEE the real one uses), showing
/// the real KMS's root beside its own TLS key, passes every other check. Only the proof that it holds the root's key
/// (<see cref="KmsRootCaProof"/>) tells it apart.
/// </summary>
public sealed class KmsRootCaPossessionTests(DevKmsFixture fixture) : IClassFixture<DevKmsFixture>
{
    /// <summary>What the stand-in reports: not the real KMS's build, which <c>--any-measurement</c> does not check.</summary>
    private static readonly byte[] StandInMeasurement = SHA384.HashData("a server that is no Morphisms KMS"u8);

    private readonly SimulatedTeeAuthority _tee = fixture.Tee;
    private readonly KmsServer _kms = fixture.Kms;

    private KmsTrustOptions AnyMeasurement => new() { Anchors = _tee.TrustedWith(TrustAnchors.Vendor), AnyMeasurement = true, Timeout = TimeSpan.FromSeconds(10) };

    /// <summary>How the stand-in answers for the proof, given the client's nonce and its own TLS key.</summary>
    private delegate string? ProofMaker(byte[] nonce, byte[] standInSpki);

    /// <summary>
    /// The defect: the real KMS's root, bound by genuine evidence to the stand-in's TLS key, with the operator's own
    /// fingerprint expected. Without a proof (all a copy of the certificate allows) it is refused, naming the root, and
    /// the proof is the only check that fails.
    /// </summary>
    [Fact]
    public async Task A_kms_presenting_another_kmss_root_without_its_key_is_refused_with_any_measurement_and_the_expected_root()
    {
        var (realRootPem, realRootSha256) = await RealRootAsync();

        var outcome = await VerifyStandInAsync(realRootPem, (_, _) => null, AnyMeasurement with { ExpectedRootCaSha256 = realRootSha256 });

        Assert.False(outcome.Trusted);
        Assert.Null(outcome.Record);
        Assert.True(outcome.Attestation!.Accepted, string.Join("; ", outcome.Attestation.Failures)); // the evidence itself is genuine
        var failure = Assert.Single(outcome.Failures);
        Assert.StartsWith($"root_ca: the KMS did not prove it holds root CA sha256 {realRootSha256}: its attestation carries no root_ca_proof", failure);
    }

    /// <summary>
    /// A stand-in that relays the client's nonce to the real KMS and passes on its proof: that proof is over the real
    /// KMS's TLS key, not the stand-in's, so it does not verify. A signature by a key of the stand-in's own fails too.
    /// </summary>
    [Fact]
    public async Task A_relayed_or_self_made_proof_for_another_kmss_root_is_refused()
    {
        var (realRootPem, realRootSha256) = await RealRootAsync();
        var options = AnyMeasurement with { ExpectedRootCaSha256 = realRootSha256 };

        var relayed = await VerifyStandInAsync(realRootPem, (nonce, _) => RealProofAsync(nonce).GetAwaiter().GetResult(), options);
        using var ownKey = ECDsa.Create(ECCurve.NamedCurves.nistP384);
        using var realRoot = X509Certificate2.CreateFromPem(realRootPem);
        var selfMade = await VerifyStandInAsync(realRootPem, (nonce, spki) => Convert.ToBase64String(KmsRootCaProof.Sign(ownKey, nonce, spki, realRoot.RawData)), options);

        foreach (var outcome in new[] { relayed, selfMade })
        {
            Assert.False(outcome.Trusted);
            Assert.StartsWith(
                $"root_ca: the KMS did not prove it holds root CA sha256 {realRootSha256}: its root_ca_proof does not verify with that root's key",
                Assert.Single(outcome.Failures));
        }
    }

    /// <summary>
    /// The same stand-in holding the key of the root it presents proves it and is trusted: what refuses the ones above
    /// is the missing proof, not the stand-in. The genuine KMS is trusted, and its record says the proof was checked.
    /// </summary>
    [Fact]
    public async Task A_kms_that_holds_the_root_it_presents_is_trusted()
    {
        using var ownRoot = TestCertificates.Ca("CN=the stand-in's own root");
        using var ownKey = ownRoot.GetECDsaPrivateKey()!;
        var options = AnyMeasurement with { ExpectedRootCaSha256 = Convert.ToHexStringLower(SHA256.HashData(ownRoot.RawData)) };

        var standIn = await VerifyStandInAsync(ownRoot.ExportCertificatePem(), (nonce, spki) => Convert.ToBase64String(KmsRootCaProof.Sign(ownKey, nonce, spki, ownRoot.RawData)), options);
        Assert.True(standIn.Trusted, string.Join("; ", standIn.Failures));
        Assert.True(standIn.Record!.RootCaKeyProven);

        var (_, realRootSha256) = await RealRootAsync();
        var genuine = await KmsAttestationClient.VerifyAsync(_kms.BaseAddress!.ToString(), AnyMeasurement with { ExpectedRootCaSha256 = realRootSha256 });
        Assert.True(genuine.Trusted, string.Join("; ", genuine.Failures));
        Assert.True(genuine.Record!.RootCaKeyProven);
        Assert.Equal(realRootSha256, genuine.Record.RootCaSha256);
    }

    /// <summary>The real KMS's root CA, as anyone can read it from its <c>sys/attestation</c>.</summary>
    private async Task<(string Pem, string Sha256)> RealRootAsync()
    {
        var data = await AttestationOfRealKmsAsync(RandomNumberGenerator.GetBytes(32));
        using var root = X509Certificate2.CreateFromPem(data["root_ca"]!.GetValue<string>());
        return (root.ExportCertificatePem(), Convert.ToHexStringLower(SHA256.HashData(root.RawData)));
    }

    /// <summary>The real KMS's proof for <paramref name="nonce"/>: over its own TLS key.</summary>
    private async Task<string?> RealProofAsync(byte[] nonce) => (await AttestationOfRealKmsAsync(nonce))["root_ca_proof"]?.GetValue<string>();

    private async Task<JsonNode> AttestationOfRealKmsAsync(byte[] nonce)
    {
        using var http = new HttpClient(new HttpClientHandler { ServerCertificateCustomValidationCallback = (_, _, _, _) => true });
        var body = JsonNode.Parse(await http.GetStringAsync(new Uri(_kms.BaseAddress!, $"v1/sys/attestation?nonce={Convert.ToHexStringLower(nonce)}")))!;
        return body["data"]!;
    }

    /// <summary>
    /// Runs a stand-in KMS on its own TLS key that answers <c>sys/attestation</c> with genuine evidence of the simulated
    /// TEE binding the client's nonce, that key and <paramref name="rootPem"/>, and with what <paramref name="proof"/>
    /// makes as <c>root_ca_proof</c>, then verifies it.
    /// </summary>
    private async Task<KmsTrustOutcome> VerifyStandInAsync(string rootPem, ProofMaker proof, KmsTrustOptions options)
    {
        using var tls = SelfSigned();
        var spki = tls.PublicKey.ExportSubjectPublicKeyInfo();
        using var root = X509Certificate2.CreateFromPem(rootPem);
        var rootDer = root.RawData;
        await using var server = new TlsTestServer(SslStreamCertificateContext.Create(tls, null), request =>
        {
            var target = Encoding.ASCII.GetString(request).Split(' ')[1];
            var nonce = Convert.FromHexString(target[(target.IndexOf("nonce=", StringComparison.Ordinal) + "nonce=".Length)..]);
            var report = _tee.CreateSnpReport(new SimulatedSnpReportRequest { ReportData = ReportDataBinding.ForKms(nonce, spki, rootDer), Measurement = StandInMeasurement });
            var body = JsonSerializer.SerializeToUtf8Bytes(new
            {
                data = new
                {
                    tee = "snp",
                    evidence = Convert.ToBase64String(report),
                    vcek = _tee.Vcek.ExportCertificatePem(),
                    root_ca = rootPem,
                    root_ca_proof = proof(nonce, spki),
                },
            });
            return [.. Encoding.ASCII.GetBytes($"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {body.Length}\r\nConnection: close\r\n\r\n"), .. body];
        });

        return await KmsAttestationClient.VerifyAsync($"https://127.0.0.1:{server.Endpoint.Port}", options);
    }

    private static X509Certificate2 SelfSigned()
    {
        using var key = ECDsa.Create(ECCurve.NamedCurves.nistP256);
        var request = new CertificateRequest("CN=stand-in KMS", key, HashAlgorithmName.SHA256);
        return request.CreateSelfSigned(DateTimeOffset.UtcNow.AddMinutes(-5), DateTimeOffset.UtcNow.AddHours(1));
    }
}
