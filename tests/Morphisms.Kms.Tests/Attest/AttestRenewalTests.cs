using Morphisms.Attestation;

namespace Morphisms.Kms.Tests.Attest;

/// <summary>
/// Renewing an attest-login token asks the registry as it is now, as Vault asks the issuing auth method: policies,
/// revision and TTLs changed since the login are not carried on by renewals.
/// </summary>
public class AttestRenewalTests
{
    private const string SignerPolicy = """
        path "secret/data/signer" { capabilities = ["read"] }
        path "auth/token/renew-self" { capabilities = ["update"] }
        """;

    [Fact]
    public async Task A_token_whose_policies_were_narrowed_is_not_renewed_and_a_fresh_login_gets_the_new_ones()
    {
        await using var kms = await TestKms.StartUnsealedAsync(SimulatedTees.TrustingSimulated);
        var c = kms.Client;
        (await c.PutAsync("sys/policies/acl/signer-read", new { policy = SignerPolicy })).Expect(204);
        (await c.PutAsync("sys/policies/acl/db-admin", new { policy = """path "secret/data/db/*" { capabilities = ["read"] }""" })).Expect(204);
        (await c.PutAsync("morphisms/functions/signer", Registration(["db-admin", "signer-read"]))).Expect(200);

        var (token, accessor) = await LoginAsync(c);
        (await c.PostAsync("auth/token/renew-self", new { increment = "30s" }, token)).Expect(200);

        // The operator narrows the function's policies: no new revision, so the token itself stays valid until it expires...
        (await c.PutAsync("morphisms/functions/signer", Registration(["signer-read"]))).Expect(200);

        // ...but no renewal keeps db-admin alive, whichever route asks.
        Assert.Equal(["policies have changed, not renewing"], (await c.PostAsync("auth/token/renew-self", new { increment = "30s" }, token)).Expect(400).Errors);
        Assert.Equal(["policies have changed, not renewing"], (await c.PostAsync("auth/token/renew", new { token })).Expect(400).Errors);
        Assert.Equal(["policies have changed, not renewing"], (await c.PostAsync("auth/token/renew-accessor", new { accessor })).Expect(400).Errors);

        // Logging in again gets what the registration grants now, and that renews.
        var (fresh, _) = await LoginAsync(c);
        Assert.Equal(["signer-read"], (await c.PostAsync("auth/token/lookup", new { token = fresh })).Expect(200).Data["policies"]!.AsArray().Select(p => p!.GetValue<string>()));
        (await c.PostAsync("auth/token/renew-self", new { increment = "30s" }, fresh)).Expect(200);
    }

    [Fact]
    public async Task A_token_of_a_revision_that_no_longer_logs_in_is_not_renewed()
    {
        await using var kms = await TestKms.StartUnsealedAsync(SimulatedTees.TrustingSimulated);
        var c = kms.Client;
        (await c.PutAsync("sys/policies/acl/signer-read", new { policy = SignerPolicy })).Expect(204);
        (await c.PutAsync("morphisms/functions/signer", Registration(["signer-read"]))).Expect(200);
        var (token, _) = await LoginAsync(c);

        // New reference values: revision 2 is active, revision 1 (the token's) superseded and refused at login.
        (await c.PutAsync("morphisms/functions/signer", Registration(["signer-read"], sgxOnly: true))).Expect(200);
        var refused = (await c.PostAsync("auth/token/renew-self", new { increment = "30s" }, token)).Expect(400);
        Assert.Contains("revision 1 of function 'signer' no longer logs in", Assert.Single(refused.Errors), StringComparison.Ordinal);
    }

    [Fact]
    public async Task Renewal_takes_the_functions_current_ttls()
    {
        await using var kms = await TestKms.StartUnsealedAsync(SimulatedTees.TrustingSimulated);
        var c = kms.Client;
        (await c.PutAsync("sys/policies/acl/signer-read", new { policy = SignerPolicy })).Expect(204);
        (await c.PutAsync("morphisms/functions/signer", Registration(["signer-read"], ttl: "20m", maxTtl: "60m"))).Expect(200);
        var (token, _) = await LoginAsync(c);

        kms.Time.Advance(TimeSpan.FromMinutes(10));
        (await c.PutAsync("morphisms/functions/signer", Registration(["signer-read"], ttl: "2m", maxTtl: "15m"))).Expect(200);

        // No increment: the current token_ttl, not the 20 minutes the token was issued with.
        Assert.Equal(120, (await c.PostAsync("auth/token/renew-self", new { }, token)).Expect(200).Auth["lease_duration"]!.GetValue<long>());

        // An increment past the current token_max_ttl (counted from the login) is capped there.
        var capped = (await c.PostAsync("auth/token/renew-self", new { increment = "20m" }, token)).Expect(200);
        Assert.Equal(300, capped.Auth["lease_duration"]!.GetValue<long>());
        Assert.Contains("capped", capped.Body!["warnings"]![0]!.GetValue<string>(), StringComparison.Ordinal);

        // A max TTL lowered below the token's age leaves nothing to renew.
        kms.Time.Advance(TimeSpan.FromMinutes(1));
        (await c.PutAsync("morphisms/functions/signer", Registration(["signer-read"], ttl: "1m", maxTtl: "5m"))).Expect(200);
        Assert.Contains("max TTL", (await c.PostAsync("auth/token/renew-self", new { }, token)).Expect(400).Errors[0], StringComparison.Ordinal);
    }

    private static object Registration(string[] policies, bool sgxOnly = false, string ttl = "30s", string maxTtl = "60m") => sgxOnly
        ? new { policies, token_ttl = ttl, token_max_ttl = maxTtl, simulated = new { sgx = new[] { Hex.Of(FunctionInstance.SgxMeasurement) } } }
        : new { policies, token_ttl = ttl, token_max_ttl = maxTtl, simulated = new { snp = new[] { Hex.Of(FunctionInstance.SnpMeasurement) } } };

    private static async Task<(string Token, string Accessor)> LoginAsync(VaultHttp c)
    {
        using var instance = new FunctionInstance();
        var nonce = await AttestFlow.ChallengeAsync(c);
        var auth = (await AttestFlow.LoginAsync(c, "snp", instance.SnpReport(nonce), nonce, instance.CsrPem)).Expect(200).Auth;
        return (auth["client_token"]!.GetValue<string>(), auth["accessor"]!.GetValue<string>());
    }
}
