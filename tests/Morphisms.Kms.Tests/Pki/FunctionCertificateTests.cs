using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;
using Morphisms.Attestation.Identity;
using Morphisms.Kms.Pki;

namespace Morphisms.Kms.Tests.Pki;

/// <summary>Attest-login signs the function's CSR: chain to the attested root, SANs, attested-identity extension.</summary>
public sealed class FunctionCertificateTests
{
    [Fact]
    public async Task Login_returns_a_certificate_for_the_csr_key_chaining_to_the_root_that_sys_attestation_serves()
    {
        await using var kms = await TestKms.StartUnsealedAsync(o => SimulatedTees.TrustingSimulated(o) with { Tls = KmsTlsOptions.SelfSigned });
        var c = kms.Client;
        await AttestFlow.RegisterSignerAsync(c);
        using var instance = new FunctionInstance();
        var nonce = await AttestFlow.ChallengeAsync(c);
        var report = instance.SnpReport(nonce);
        var login = (await AttestFlow.LoginAsync(c, "snp", report, nonce, instance.CsrPem)).Expect(200).Data;

        var rootPem = (await c.GetAsync($"sys/attestation?nonce={new string('0', 32)}", "")).Expect(200).Data["root_ca"]!.GetValue<string>();
        using var root = X509Certificate2.CreateFromPem(rootPem);
        var leafPem = login["certificate"]!.GetValue<string>();
        using var leaf = X509Certificate2.CreateFromPem(leafPem);
        var chainPems = login["ca_chain"]!.AsArray().Select(n => n!.GetValue<string>()).ToList();
        Assert.Equal(2, chainPems.Count);
        Assert.Equal(root.Thumbprint, PkiAssert.Certificates([chainPems[^1]])[0].Thumbprint);
        var at = kms.Time.GetUtcNow().AddMinutes(1);
        PkiAssert.Chains(leaf, root, PkiAssert.Certificates(chainPems), at);
        PkiAssert.OpensslVerifies(leafPem, rootPem, chainPems, at);

        Assert.Equal(instance.Spki, leaf.PublicKey.ExportSubjectPublicKeyInfo());
        var names = leaf.Extensions.OfType<X509SubjectAlternativeNameExtension>().Single().EnumerateDnsNames().ToList();
        Assert.Equal(["signer.fn.morphisms.local", "1.signer.fn.morphisms.local"], names);
        // The token may live 60 minutes (the default max TTL), the certificate only the KMS's 15 (plus the 30 s backdate).
        Assert.Equal(TimeSpan.FromSeconds(900 + 30), leaf.NotAfter - leaf.NotBefore);

        var identity = AttestedIdentityExtension.FromCertificate(leaf)!;
        Assert.Equal("snp", identity.Tee);
        Assert.Equal(FunctionInstance.SnpMeasurement, identity.Measurement);
        Assert.Equal("signer", identity.Function);
        Assert.Equal(1, identity.Revision);
        Assert.Equal(SHA256.HashData(report), identity.EvidenceSha256);
        Assert.Equal(login["attestation"]!["evidence_sha256"]!.GetValue<string>(), Convert.ToHexStringLower(identity.EvidenceSha256));
        Assert.True(identity.Simulated);
        Assert.False(leaf.Extensions[AttestedIdentityExtension.Oid]!.Critical);
        Assert.StartsWith("2.25.", AttestedIdentityExtension.Oid, StringComparison.Ordinal);

        // The certificate is on record, so it can be revoked like any other.
        var serial = string.Join(':', Convert.ToHexStringLower(leaf.SerialNumberBytes.Span).Chunk(2).Select(p => new string(p)));
        (await c.GetAsync("pki/cert/" + serial)).Expect(200);

        // The domain is configurable.
        (await c.PostAsync("pki/config/functions", new { domain = "functions.example.org" })).Expect(204);
        nonce = await AttestFlow.ChallengeAsync(c);
        var second = (await AttestFlow.LoginAsync(c, "snp", instance.SnpReport(nonce), nonce, instance.CsrPem)).Expect(200).Data;
        using var secondLeaf = X509Certificate2.CreateFromPem(second["certificate"]!.GetValue<string>());
        Assert.Contains("signer.functions.example.org", secondLeaf.Extensions.OfType<X509SubjectAlternativeNameExtension>().Single().EnumerateDnsNames());
    }

    [Theory]
    [InlineData(24 * 3600, null, 15 * 60)]
    [InlineData(24 * 3600, 2 * 3600, 2 * 3600)]
    [InlineData(10 * 60, null, 10 * 60)]
    public async Task The_certificate_lives_the_shorter_of_the_token_max_ttl_and_the_kms_cap(int tokenMaxTtl, int? cap, int expected)
    {
        // A client that checks no CRL refuses a retired revision's instance cut off from the KMS only once its certificate
        // expires, so that must come within the cap however long the function's tokens may live.
        await using var kms = await TestKms.StartUnsealedAsync(o => SimulatedTees.TrustingSimulated(o) with
        {
            FunctionCertificateMaxTtl = cap is { } seconds ? TimeSpan.FromSeconds(seconds) : o.FunctionCertificateMaxTtl,
        });
        var c = kms.Client;
        await AttestFlow.RegisterSignerAsync(c);
        var registration = System.Text.Json.JsonSerializer.SerializeToNode(AttestFlow.SignerRegistration())!.AsObject();
        registration["token_max_ttl"] = tokenMaxTtl;
        (await c.PutAsync("morphisms/functions/signer", registration)).Expect(200);
        using var instance = new FunctionInstance();
        var nonce = await AttestFlow.ChallengeAsync(c);
        var login = (await AttestFlow.LoginAsync(c, "snp", instance.SnpReport(nonce), nonce, instance.CsrPem)).Expect(200);

        using var leaf = X509Certificate2.CreateFromPem(login.Data["certificate"]!.GetValue<string>());
        Assert.Equal(TimeSpan.FromSeconds(expected + 30), leaf.NotAfter - leaf.NotBefore);

        // The token keeps the function's own max TTL: only the certificate is capped.
        var token = login.Auth["client_token"]!.GetValue<string>();
        Assert.Equal(tokenMaxTtl, (await c.PostAsync("auth/token/lookup", new { token })).Expect(200).Data["explicit_max_ttl"]!.GetValue<long>());
    }

    [Fact]
    public void The_extension_round_trips_and_rejects_malformed_values()
    {
        var value = new AttestedIdentityExtension("sgx", [1, 2, 3], "fn", 7, new byte[32], false);
        var decoded = AttestedIdentityExtension.Decode(value.Encode());
        Assert.Equal(("sgx", "fn", 7, false), (decoded.Tee, decoded.Function, decoded.Revision, decoded.Simulated));
        Assert.Equal(value.Measurement, decoded.Measurement);
        Assert.Throws<CryptographicException>(() => AttestedIdentityExtension.Decode(value.Encode()[..^1]));
        Assert.Throws<CryptographicException>(() => AttestedIdentityExtension.Decode(new byte[] { 0x30, 0x00 }));
    }
}
