using Morphisms.Attestation;

namespace Morphisms.Kms.Tests.Updates;

/// <summary>
/// An owned function's secret bundle is its own whatever the ACL policies say: a registry writer who may also write
/// policies (the serving host writes <c>morph-fn-NAME</c> at every deploy) must not reach it through a function of its
/// own choosing, attested with its own code.
/// </summary>
public sealed class OwnedBundleTests
{
    private const string Bundle = "secret/data/signer";

    [Fact]
    public async Task Another_function_the_host_registers_with_a_policy_naming_the_bundle_can_neither_read_nor_change_it()
    {
        await using var kms = await TestKms.StartUnsealedAsync(SimulatedTees.TrustingSimulated);
        var c = kms.Client;
        await OwnedFunction.RegisterAsync(c);
        (await c.PostAsync(Bundle, new { data = new { key = "approved" } })).Expect(200);
        var host = await HostWritingPoliciesAsync(c);

        // The host writes a policy over the bundle and registers its own code with it; its instance attests fine.
        (await c.PutAsync("sys/policies/acl/morph-fn-evil", new { policy = """path "secret/*" { capabilities = ["create", "read", "update", "delete"] }""" }, host)).Expect(204);
        (await c.PutAsync("morphisms/functions/evil", new { policies = new[] { "morph-fn-evil" }, simulated = new { snp = new[] { Hex.Of(OwnedFunction.NewSnp) } } }, host)).Expect(200);
        using var instance = new FunctionInstance();
        var evil = await LoginAsync(c, instance, "evil", OwnedFunction.NewSnp);

        foreach (var refused in new[]
        {
            await c.GetAsync(Bundle, evil),
            await c.PostAsync(Bundle, new { data = new { key = "chosen-by-the-host" } }, evil),
            await c.GetAsync("secret/metadata/signer", evil),
            await c.DeleteAsync("secret/metadata/signer", evil),
            await c.PostAsync("secret/delete/signer", new { versions = new[] { 1 } }, evil),
            await c.PostAsync("secret/destroy/signer", new { versions = new[] { 1 } }, evil),
        })
        {
            refused.Expect(403);
            Assert.Contains("secret bundle of function 'signer'", Assert.Single(refused.Errors), StringComparison.Ordinal);
            Assert.DoesNotContain("approved", refused.Raw, StringComparison.Ordinal);
        }

        // Its own paths still work: the guard is about the owned bundle, not the policy.
        (await c.PostAsync("secret/data/evil", new { data = new { a = "b" } }, evil)).Expect(200);

        // The bundle is unchanged, and signer's own instance still reads it.
        var signer = await LoginAsync(c, instance, "signer", FunctionInstance.SnpMeasurement);
        Assert.Equal("approved", (await c.GetAsync(Bundle, signer)).Expect(200).Data["data"]!["key"]!.GetValue<string>());
        Assert.Equal(1, (await c.GetAsync("secret/metadata/signer")).Expect(200).Data["current_version"]!.GetValue<int>());
    }

    [Fact]
    public async Task The_functions_own_instances_only_read_it_its_owners_manage_it_and_a_later_owned_function_naming_the_path_gets_nothing()
    {
        await using var kms = await TestKms.StartUnsealedAsync(SimulatedTees.TrustingSimulated);
        var c = kms.Client;
        await OwnedFunction.RegisterAsync(c);
        var host = await HostWritingPoliciesAsync(c);
        (await c.PutAsync("sys/policies/acl/signer-read", new { policy = $$"""path "{{Bundle}}" { capabilities = ["read", "update"] }""" })).Expect(204);
        (await c.PutAsync("sys/policies/acl/kv-admin", new { policy = """path "secret/*" { capabilities = ["create", "read", "update", "delete", "list"] }""" })).Expect(204);

        // An owner (with a policy allowing it) writes the bundle; a token with the same policy but no owner name cannot.
        var alice = (await c.PostAsync("auth/token/create", new { policies = new[] { "kv-admin" }, meta = new { morphisms_owner = "alice" } })).Expect(200).Auth["client_token"]!.GetValue<string>();
        var admin = (await c.PostAsync("auth/token/create", new { policies = new[] { "kv-admin" } })).Expect(200).Auth["client_token"]!.GetValue<string>();
        (await c.PostAsync(Bundle, new { data = new { key = "from-alice" } }, alice)).Expect(200);
        (await c.PostAsync(Bundle, new { data = new { key = "from-admin" } }, admin)).Expect(403);
        (await c.GetAsync(Bundle, admin)).Expect(403);

        // A token made by auth/token/create that claims to be the function's instance in its metadata is not one.
        var forged = (await c.PostAsync("auth/token/create", new { policies = new[] { "kv-admin" }, meta = new { function = "signer" } })).Expect(200).Auth["client_token"]!.GetValue<string>();
        (await c.GetAsync(Bundle, forged)).Expect(403);

        // The function's own instance reads, even though its policy would let it write too.
        using var instance = new FunctionInstance();
        var signer = await LoginAsync(c, instance, "signer", FunctionInstance.SnpMeasurement);
        Assert.Equal("from-alice", (await c.GetAsync(Bundle, signer)).Expect(200).Data["data"]!["key"]!.GetValue<string>());
        (await c.PostAsync(Bundle, new { data = new { key = "from-the-instance" } }, signer)).Expect(403);

        // A second owned function the host registers naming the same path, with owners of its own, does not share it.
        (await c.PutAsync("sys/policies/acl/morph-fn-twin", new { policy = $$"""path "{{Bundle}}" { capabilities = ["read"] }""" }, host)).Expect(204);
        (await c.PutAsync("morphisms/functions/twin", new
        {
            owners = new[] { "mallory" },
            approvals_required = 1,
            secret_path = Bundle,
            policies = new[] { "morph-fn-twin" },
            simulated = new { snp = new[] { Hex.Of(OwnedFunction.NewSnp) } },
        }, host)).Expect(200);
        var twin = await LoginAsync(c, instance, "twin", OwnedFunction.NewSnp);
        Assert.Contains("secret bundle of function 'signer'", Assert.Single((await c.GetAsync(Bundle, twin)).Expect(403).Errors), StringComparison.Ordinal);

        // Root reaches everything, as everywhere.
        Assert.Equal("from-alice", (await c.GetAsync(Bundle)).Expect(200).Data["data"]!["key"]!.GetValue<string>());
    }

    [Fact]
    public async Task A_function_without_owner_approval_keeps_plain_acl_semantics()
    {
        await using var kms = await TestKms.StartUnsealedAsync(SimulatedTees.TrustingSimulated);
        var c = kms.Client;
        (await c.PutAsync("sys/policies/acl/kv-admin", new { policy = """path "secret/*" { capabilities = ["create", "read", "update", "delete", "list"] }""" })).Expect(204);
        (await c.PutAsync("morphisms/functions/signer", new { policies = new[] { "kv-admin" }, simulated = new { snp = new[] { Hex.Of(FunctionInstance.SnpMeasurement) } } })).Expect(200);
        var admin = (await c.PostAsync("auth/token/create", new { policies = new[] { "kv-admin" } })).Expect(200).Auth["client_token"]!.GetValue<string>();

        (await c.PostAsync(Bundle, new { data = new { key = "k" } }, admin)).Expect(200);
        Assert.Equal("k", (await c.GetAsync(Bundle, admin)).Expect(200).Data["data"]!["key"]!.GetValue<string>());

        // Becoming owned protects it from the next request on (the registry write refreshes what the guard knows).
        (await c.PutAsync("morphisms/functions/signer", new { owners = new[] { "alice" }, approvals_required = 1 })).Expect(200);
        (await c.GetAsync(Bundle, admin)).Expect(403);
    }

    /// <summary>The serving host's token as a deploy needs it: the registry and the ACL policies it writes.</summary>
    private static async Task<string> HostWritingPoliciesAsync(VaultHttp c)
    {
        (await c.PutAsync("sys/policies/acl/serving-host", new
        {
            policy = """
                path "morphisms/functions" { capabilities = ["list", "sudo"] }
                path "morphisms/functions/*" { capabilities = ["create", "read", "update", "delete", "list", "sudo"] }
                path "sys/policies/acl/morph-fn-*" { capabilities = ["create", "read", "update", "delete"] }
                """,
        })).Expect(204);
        return (await c.PostAsync("auth/token/create", new { policies = new[] { "serving-host" } })).Expect(200).Auth["client_token"]!.GetValue<string>();
    }

    private static async Task<string> LoginAsync(VaultHttp c, FunctionInstance instance, string function, byte[] measurement)
    {
        var nonce = await AttestFlow.ChallengeAsync(c, function);
        var login = (await AttestFlow.LoginAsync(c, "snp", instance.SnpReport(nonce, measurement), nonce, instance.CsrPem, function)).Expect(200);
        return login.Auth["client_token"]!.GetValue<string>();
    }
}
