using System.Security.Cryptography;
using Morphisms.Attestation;
using Morphisms.Attestation.Simulated;
using Morphisms.Testing;

namespace Morphisms.Kms.Tests.Attest;

/// <summary>Attest-login end to end on real Kestrel with the simulated TEE.</summary>
public class AttestLoginTests
{
    private const ulong DebugPolicy = SimulatedTeeAuthority.DefaultSnpPolicy | (1UL << 19);

    [Fact]
    public async Task A_function_registered_without_a_secret_path_is_told_the_default_one()
    {
        // Named rather than left to the agent, whose fallback is its command line: the host's to write.
        await using var kms = await TestKms.StartUnsealedAsync(SimulatedTees.TrustingSimulated);
        var c = kms.Client;
        (await c.PutAsync("sys/policies/acl/signer-read", new { policy = """path "secret/data/signer" { capabilities = ["read"] }""" })).Expect(204);
        (await c.PutAsync("morphisms/functions/signer", new
        {
            policies = new[] { "signer-read" },
            simulated = new { snp = new[] { Hex.Of(FunctionInstance.SnpMeasurement) } },
        })).Expect(200);

        using var instance = new FunctionInstance();
        var nonce = await AttestFlow.ChallengeAsync(c);
        var login = (await AttestFlow.LoginAsync(c, "snp", instance.SnpReport(nonce), nonce, instance.CsrPem)).Expect(200);

        Assert.Equal("secret/data/signer", login.Data["secret_path"]!.GetValue<string>());
    }

    [Fact]
    public async Task Snp_format_simulated_evidence_logs_in_with_only_the_functions_policies()
    {
        await using var kms = await TestKms.StartUnsealedAsync(SimulatedTees.TrustingSimulated);
        var c = kms.Client;
        await AttestFlow.RegisterSignerAsync(c);
        (await c.PostAsync("secret/data/signer", new { data = new { key = "s3cret" } })).Expect(200);
        (await c.PostAsync("secret/data/other", new { data = new { key = "other" } })).Expect(200);

        using var instance = new FunctionInstance();
        var nonce = await AttestFlow.ChallengeAsync(c);
        var login = (await AttestFlow.LoginAsync(c, "snp", instance.SnpReport(nonce), nonce, instance.CsrPem)).Expect(200);

        var auth = login.Auth;
        var token = auth["client_token"]!.GetValue<string>();
        Assert.Equal(["signer-read"], auth["policies"]!.AsArray().Select(p => p!.GetValue<string>()));
        Assert.Equal(30, auth["lease_duration"]!.GetValue<long>());
        Assert.True(auth["renewable"]!.GetValue<bool>());
        Assert.True(auth["orphan"]!.GetValue<bool>());
        Assert.Equal("signer", auth["metadata"]!["function"]!.GetValue<string>());
        Assert.Equal("snp", auth["metadata"]!["tee"]!.GetValue<string>());
        Assert.Equal("true", auth["metadata"]!["simulated"]!.GetValue<string>());
        Assert.Equal(Hex.Of(FunctionInstance.SnpMeasurement), auth["metadata"]!["measurement"]!.GetValue<string>());
        var data = login.Data;
        Assert.Equal(1, data["revision"]!.GetValue<int>());
        Assert.StartsWith("-----BEGIN CERTIFICATE-----", data["certificate"]!.GetValue<string>(), StringComparison.Ordinal);
        Assert.Equal(2, data["ca_chain"]!.AsArray().Count);
        Assert.Equal("secret/data/signer", data["secret_path"]!.GetValue<string>()); // where the agent reads its bundle
        Assert.True(data["attestation"]!["simulated"]!.GetValue<bool>());
        Assert.Equal("warning", data["attestation"]!["status"]!.GetValue<string>());
        Assert.Contains(login.Body!["warnings"]!.AsArray(), w => w!.GetValue<string>().Contains("simulated", StringComparison.Ordinal));

        // The token works for exactly what the function's policy grants.
        Assert.Equal("s3cret", (await c.GetAsync("secret/data/signer", token)).Expect(200).Data["data"]!["key"]!.GetValue<string>());
        (await c.GetAsync("secret/data/other", token)).Expect(403);
        (await c.GetAsync("auth/token/lookup-self", token)).Expect(403);

        var lookup = (await c.PostAsync("auth/token/lookup", new { token })).Expect(200).Data;
        Assert.Equal(["signer-read"], lookup["policies"]!.AsArray().Select(p => p!.GetValue<string>()));
        Assert.Equal(3600, lookup["explicit_max_ttl"]!.GetValue<long>());
        Assert.Equal("auth/attest/login", lookup["path"]!.GetValue<string>());
        Assert.Equal("attest-signer", lookup["display_name"]!.GetValue<string>());

        // Renewable up to the registered max TTL, then it expires.
        kms.Time.Advance(TimeSpan.FromSeconds(20));
        (await c.PostAsync("auth/token/renew", new { token })).Expect(200);
        kms.Time.Advance(TimeSpan.FromSeconds(31));
        (await c.GetAsync("secret/data/signer", token)).Expect(403);
    }

    [Fact]
    public async Task Sgx_format_simulated_evidence_logs_in_with_collateral_from_the_kms()
    {
        await using var kms = await TestKms.StartUnsealedAsync(SimulatedTees.TrustingSimulated);
        await AttestFlow.RegisterSignerAsync(kms.Client);
        using var instance = new FunctionInstance();
        var nonce = await AttestFlow.ChallengeAsync(kms.Client);

        var login = (await AttestFlow.LoginAsync(kms.Client, "sgx", instance.SgxQuote(nonce), nonce, instance.CsrPem)).Expect(200);
        Assert.Equal("sgx", login.Auth["metadata"]!["tee"]!.GetValue<string>());
        Assert.Equal(Hex.Of(FunctionInstance.SgxMeasurement), login.Auth["metadata"]!["measurement"]!.GetValue<string>());
        Assert.Equal("UpToDate", login.Data["attestation"]!["tcb_status"]!.GetValue<string>());
    }

    [Fact]
    public async Task A_tampered_evidence_byte_is_refused_by_the_signature_check()
    {
        await using var kms = await StartWithSignerAsync();
        using var instance = new FunctionInstance();
        var nonce = await AttestFlow.ChallengeAsync(kms.Client);
        var report = instance.SnpReport(nonce);
        report[0x50] ^= 0x01; // REPORT_DATA: still well-formed, no longer what was signed

        var refused = (await AttestFlow.LoginAsync(kms.Client, "snp", report, nonce, instance.CsrPem)).Expect(403);
        Assert.StartsWith("attestation refused: ", refused.Errors.Single(), StringComparison.Ordinal);
        Assert.Contains("snp.signature", refused.Errors.Single(), StringComparison.Ordinal);
    }

    [Fact]
    public async Task A_nonce_the_kms_never_issued_is_refused()
    {
        await using var kms = await StartWithSignerAsync();
        using var instance = new FunctionInstance();
        var nonce = RandomNumberGenerator.GetBytes(56);

        var refused = (await AttestFlow.LoginAsync(kms.Client, "snp", instance.SnpReport(nonce), nonce, instance.CsrPem)).Expect(403);
        Assert.Contains("nonce unknown", refused.Errors.Single(), StringComparison.Ordinal);
    }

    [Theory]
    [InlineData(0)] // random part
    [InlineData(20)] // expiry
    [InlineData(30)] // function tag
    [InlineData(55)] // issuer tag
    public async Task A_nonce_altered_in_one_bit_gets_the_uniform_refusal_and_the_real_one_still_works(int at)
    {
        await using var kms = await StartWithSignerAsync();
        using var instance = new FunctionInstance();
        var nonce = await AttestFlow.ChallengeAsync(kms.Client);
        var altered = (byte[])nonce.Clone();
        altered[at] ^= 0x01;

        var refused = (await AttestFlow.LoginAsync(kms.Client, "snp", instance.SnpReport(altered), altered, instance.CsrPem)).Expect(403);
        Assert.Equal("attestation refused: nonce unknown: not issued by this KMS since its start, or altered", refused.Errors.Single());
        (await AttestFlow.LoginAsync(kms.Client, "snp", instance.SnpReport(nonce), nonce, instance.CsrPem)).Expect(200);
    }

    [Fact]
    public async Task Evidence_bound_to_another_nonce_than_the_one_presented_is_refused()
    {
        await using var kms = await StartWithSignerAsync();
        using var instance = new FunctionInstance();
        var issued = await AttestFlow.ChallengeAsync(kms.Client);
        var other = await AttestFlow.ChallengeAsync(kms.Client);

        var refused = (await AttestFlow.LoginAsync(kms.Client, "snp", instance.SnpReport(other), issued, instance.CsrPem)).Expect(403);
        Assert.Contains("binding: ", refused.Errors.Single(), StringComparison.Ordinal);
    }

    [Fact]
    public async Task A_replayed_nonce_is_refused()
    {
        await using var kms = await StartWithSignerAsync();
        using var instance = new FunctionInstance();
        var nonce = await AttestFlow.ChallengeAsync(kms.Client);
        var report = instance.SnpReport(nonce);

        (await AttestFlow.LoginAsync(kms.Client, "snp", report, nonce, instance.CsrPem)).Expect(200);
        var replay = (await AttestFlow.LoginAsync(kms.Client, "snp", report, nonce, instance.CsrPem)).Expect(403);
        Assert.Equal("attestation refused: nonce already used", replay.Errors.Single());
    }

    [Fact]
    public async Task A_refused_login_spends_nothing_and_its_nonce_still_serves_one_accepted_login()
    {
        await using var kms = await StartWithSignerAsync();
        using var instance = new FunctionInstance();
        using var other = new FunctionInstance();
        var nonce = await AttestFlow.ChallengeAsync(kms.Client);

        // Evidence bound to another key: refused, and nothing is spent (a refusal must not fill the spent set).
        (await AttestFlow.LoginAsync(kms.Client, "snp", instance.SnpReport(nonce), nonce, other.CsrPem)).Expect(403);
        (await AttestFlow.LoginAsync(kms.Client, "snp", instance.SnpReport(nonce), nonce, instance.CsrPem)).Expect(200);
        var replay = (await AttestFlow.LoginAsync(kms.Client, "snp", instance.SnpReport(nonce), nonce, instance.CsrPem)).Expect(403);
        Assert.Equal("attestation refused: nonce already used", replay.Errors.Single());
    }

    [Fact]
    public async Task Forged_evidence_with_genuine_nonces_cannot_fill_the_spent_set()
    {
        // With room for two spent nonces, three logins with genuine nonces and a forged report (a byte changed after
        // signing, so its signature fails) used to fill the set and lock the real instance out with 429s.
        await using var kms = await TestKms.StartUnsealedAsync(o => SimulatedTees.TrustingSimulated(o) with
        {
            Attestation = SimulatedTees.TrustingSimulated(o).Attestation with { MaxSpentNonces = 2 },
        });
        await AttestFlow.RegisterSignerAsync(kms.Client);
        using var instance = new FunctionInstance();
        for (var i = 0; i < 3; i++)
        {
            var nonce = await AttestFlow.ChallengeAsync(kms.Client);
            var forged = instance.SnpReport(nonce);
            forged[0x50] ^= 1; // REPORT_DATA: still well-formed, no longer what was signed
            (await AttestFlow.LoginAsync(kms.Client, "snp", forged, nonce, instance.CsrPem)).Expect(403);
        }

        var real = await AttestFlow.ChallengeAsync(kms.Client);
        (await AttestFlow.LoginAsync(kms.Client, "snp", instance.SnpReport(real), real, instance.CsrPem)).Expect(200);
    }

    [Fact]
    public async Task An_unregistered_measurement_is_refused()
    {
        await using var kms = await StartWithSignerAsync();
        using var instance = new FunctionInstance();
        var nonce = await AttestFlow.ChallengeAsync(kms.Client);
        var changed = SHA384.HashData("one byte of the function changed"u8);

        var refused = (await AttestFlow.LoginAsync(kms.Client, "snp", instance.SnpReport(nonce, changed), nonce, instance.CsrPem)).Expect(403);
        Assert.Equal(
            $"attestation refused: reference_values: measurement {Hex.Of(changed)} (simulated snp-format) not registered for function signer",
            refused.Errors.Single());
    }

    [Fact]
    public async Task Snp_evidence_whose_guest_policy_allows_debug_is_refused()
    {
        await using var kms = await StartWithSignerAsync();
        using var instance = new FunctionInstance();
        var nonce = await AttestFlow.ChallengeAsync(kms.Client);

        var refused = (await AttestFlow.LoginAsync(kms.Client, "snp", instance.SnpReport(nonce, policy: DebugPolicy), nonce, instance.CsrPem)).Expect(403);
        Assert.Contains("snp.policy.debug", refused.Errors.Single(), StringComparison.Ordinal);
    }

    [Fact]
    public async Task A_debug_sgx_enclave_is_refused()
    {
        await using var kms = await StartWithSignerAsync();
        using var instance = new FunctionInstance();
        var nonce = await AttestFlow.ChallengeAsync(kms.Client);

        var refused = (await AttestFlow.LoginAsync(kms.Client, "sgx", instance.SgxQuote(nonce, debug: true), nonce, instance.CsrPem)).Expect(403);
        Assert.Contains("sgx.debug", refused.Errors.Single(), StringComparison.Ordinal);
    }

    [Fact]
    public async Task An_expired_nonce_is_refused()
    {
        await using var kms = await StartWithSignerAsync();
        using var instance = new FunctionInstance();
        var nonce = await AttestFlow.ChallengeAsync(kms.Client);
        kms.Time.Advance(TimeSpan.FromSeconds(61));

        var refused = (await AttestFlow.LoginAsync(kms.Client, "snp", instance.SnpReport(nonce), nonce, instance.CsrPem)).Expect(403);
        Assert.Equal("attestation refused: nonce expired", refused.Errors.Single());
    }

    [Fact]
    public async Task A_csr_for_another_key_than_the_bound_one_is_refused()
    {
        await using var kms = await StartWithSignerAsync();
        using var instance = new FunctionInstance();
        using var impostor = new FunctionInstance();
        var nonce = await AttestFlow.ChallengeAsync(kms.Client);

        var refused = (await AttestFlow.LoginAsync(kms.Client, "snp", instance.SnpReport(nonce), nonce, impostor.CsrPem)).Expect(403);
        Assert.StartsWith("attestation refused: binding: ", refused.Errors.Single(), StringComparison.Ordinal);
    }

    [Fact]
    public async Task Evidence_from_a_simulated_root_the_kms_does_not_trust_is_refused()
    {
        await using var kms = await StartWithSignerAsync();
        using var instance = new FunctionInstance();
        var nonce = await AttestFlow.ChallengeAsync(kms.Client);
        var foreign = instance.SnpReport(nonce, tee: SimulatedTees.Untrusted);

        var refused = (await AttestFlow.LoginAsync(kms.Client, "snp", foreign, nonce, instance.CsrPem, endorsements: SimulatedTees.Untrusted.Vcek.RawData)).Expect(403);
        Assert.Contains("snp.chain", refused.Errors.Single(), StringComparison.Ordinal);
    }

    [Fact]
    public async Task A_vcek_whose_key_is_on_a_curve_no_library_knows_is_refused_not_an_internal_error()
    {
        await using var kms = await StartWithSignerAsync();
        using var instance = new FunctionInstance();
        var nonce = await AttestFlow.ChallengeAsync(kms.Client);
        var vcek = TestCertificates.OnUnknownCurve(SimulatedTees.Trusted.Vcek.RawData);

        var refused = (await AttestFlow.LoginAsync(kms.Client, "snp", instance.SnpReport(nonce), nonce, instance.CsrPem, endorsements: vcek)).Expect(403);
        Assert.Contains("snp.signature", refused.Errors.Single(), StringComparison.Ordinal);
    }

    [Fact]
    public async Task A_kms_that_does_not_trust_the_simulated_tee_refuses_its_evidence()
    {
        // Production: the simulated TEE is configured (for self-attestation) but not trusted for logins.
        await using var kms = await TestKms.StartUnsealedAsync(o => o with { Attestation = new() { SimulatedTee = SimulatedTees.Trusted, SimulatedMeasurement = SimulatedTees.KmsMeasurement } });
        await AttestFlow.RegisterSignerAsync(kms.Client);
        using var instance = new FunctionInstance();
        var nonce = await AttestFlow.ChallengeAsync(kms.Client);

        var refused = (await AttestFlow.LoginAsync(kms.Client, "snp", instance.SnpReport(nonce), nonce, instance.CsrPem, endorsements: SimulatedTees.Trusted.Vcek.RawData)).Expect(403);
        Assert.StartsWith("attestation refused: snp.", refused.Errors.Single(), StringComparison.Ordinal);
    }

    [Fact]
    public async Task A_nonce_issued_for_another_function_is_refused()
    {
        await using var kms = await StartWithSignerAsync();
        (await kms.Client.PutAsync("morphisms/functions/verifier", AttestFlow.SignerRegistration())).Expect(200);
        using var instance = new FunctionInstance();
        var nonce = await AttestFlow.ChallengeAsync(kms.Client, "verifier");

        var refused = (await AttestFlow.LoginAsync(kms.Client, "snp", instance.SnpReport(nonce), nonce, instance.CsrPem)).Expect(403);
        Assert.Equal("attestation refused: nonce was issued for another function", refused.Errors.Single());
    }

    [Fact]
    public async Task Unregistered_functions_get_no_challenge_and_no_token()
    {
        await using var kms = await StartWithSignerAsync();
        var challenge = (await kms.Client.PostAsync("auth/attest/challenge", new { function = "ghost" }, token: "")).Expect(404);
        Assert.Equal("function ghost is not registered", challenge.Errors.Single());

        // Deleted between challenge and login: the login is refused, not "not found".
        using var instance = new FunctionInstance();
        var nonce = await AttestFlow.ChallengeAsync(kms.Client);
        (await kms.Client.DeleteAsync("morphisms/functions/signer")).Expect(204);
        var refused = (await AttestFlow.LoginAsync(kms.Client, "snp", instance.SnpReport(nonce), nonce, instance.CsrPem)).Expect(403);
        Assert.Equal("attestation refused: function signer is not registered", refused.Errors.Single());
    }

    private static async Task<TestKms> StartWithSignerAsync()
    {
        var kms = await TestKms.StartUnsealedAsync(SimulatedTees.TrustingSimulated);
        await AttestFlow.RegisterSignerAsync(kms.Client);
        return kms;
    }
}
