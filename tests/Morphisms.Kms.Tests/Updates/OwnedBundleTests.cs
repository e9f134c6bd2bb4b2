using Morphisms.Attestation;
using Morphisms.Kms.Storage;

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
    public async Task The_functions_own_instances_only_read_it_its_owners_manage_it_and_a_later_owned_function_may_not_name_the_path()
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

        // A second owned function the host registers naming the same path, with owners of its own, is refused; the
        // same function without owners may name it, and does not share it.
        (await c.PutAsync("sys/policies/acl/morph-fn-twin", new { policy = $$"""path "{{Bundle}}" { capabilities = ["read"] }""" }, host)).Expect(204);
        var twinSpec = new { policies = new[] { "morph-fn-twin" }, secret_path = Bundle, simulated = new { snp = new[] { Hex.Of(OwnedFunction.NewSnp) } } };
        var owned = (await c.PutAsync("morphisms/functions/twin", new { twinSpec.policies, twinSpec.secret_path, twinSpec.simulated, owners = new[] { "mallory" }, approvals_required = 1 }, host)).Expect(400);
        Assert.Contains("'secret_path': secret/data/signer is the secret bundle of function 'signer'", Assert.Single(owned.Errors), StringComparison.Ordinal);
        (await c.PutAsync("morphisms/functions/twin", twinSpec, host)).Expect(200);
        var twin = await LoginAsync(c, instance, "twin", OwnedFunction.NewSnp);
        Assert.Contains("secret bundle of function 'signer'", Assert.Single((await c.GetAsync(Bundle, twin)).Expect(403).Errors), StringComparison.Ordinal);

        // Root reaches everything, as everywhere.
        Assert.Equal("from-alice", (await c.GetAsync(Bundle)).Expect(200).Data["data"]!["key"]!.GetValue<string>());
    }

    [Fact]
    public async Task An_older_function_without_owners_that_the_host_makes_owned_cannot_take_the_bundle_over()
    {
        // The host registered its decoy before signer existed: registered first, but it never held the path.
        await using var kms = await TestKms.StartUnsealedAsync(SimulatedTees.TrustingSimulated);
        var c = kms.Client;
        var host = await HostWritingPoliciesAsync(c);
        (await c.PutAsync("morphisms/functions/aaa", new { simulated = new { snp = new[] { Hex.Of(OwnedFunction.NewSnp) } } }, host)).Expect(200);
        kms.Time.Advance(TimeSpan.FromMinutes(1));
        await OwnedFunction.RegisterAsync(c);
        (await c.PostAsync(Bundle, new { data = new { key = "approved" } })).Expect(200);

        // One write that would apply at once (aaa requires no approvals yet): owners of the host's choosing, signer's
        // path, a policy reading it. Refused, naming the field and the holder, and nothing of it is written.
        (await c.PutAsync("sys/policies/acl/morph-fn-aaa", new { policy = $$"""path "{{Bundle}}" { capabilities = ["read"] }""" }, host)).Expect(204);
        var takeover = (await c.PutAsync("morphisms/functions/aaa", new
        {
            owners = new[] { "x" },
            approvals_required = 1,
            secret_path = Bundle,
            policies = new[] { "morph-fn-aaa" },
            simulated = new { snp = new[] { Hex.Of(OwnedFunction.NewSnp) } },
        }, host)).Expect(400);
        Assert.Contains("'secret_path': secret/data/signer is the secret bundle of function 'signer'", Assert.Single(takeover.Errors), StringComparison.Ordinal);
        var aaa = (await c.GetAsync("morphisms/functions/aaa")).Expect(200).Data;
        Assert.Equal(0, aaa["approvals_required"]!.GetValue<int>());
        Assert.Null(aaa["secret_path"]);
        Assert.Empty(aaa["policies"]!.AsArray());

        // signer's instance still reads its bundle; an instance of aaa given a policy on it (policies are not gated) does not.
        using var instance = new FunctionInstance();
        var signer = await LoginAsync(c, instance, "signer", FunctionInstance.SnpMeasurement);
        Assert.Equal("approved", (await c.GetAsync(Bundle, signer)).Expect(200).Data["data"]!["key"]!.GetValue<string>());
        (await c.PutAsync("morphisms/functions/aaa", new { policies = new[] { "morph-fn-aaa" } }, host)).Expect(200);
        var decoy = await LoginAsync(c, instance, "aaa", OwnedFunction.NewSnp);
        Assert.Contains("secret bundle of function 'signer'", Assert.Single((await c.GetAsync(Bundle, decoy)).Expect(403).Errors), StringComparison.Ordinal);
    }

    [Fact]
    public async Task An_approved_update_cannot_move_an_older_owned_function_onto_another_ones_bundle()
    {
        // Owners who collude with the host approve whatever it proposes: still not another function's bundle.
        await using var kms = await TestKms.StartUnsealedAsync(SimulatedTees.TrustingSimulated);
        var c = kms.Client;
        var host = await HostWritingPoliciesAsync(c);
        (await c.PutAsync("morphisms/functions/old", new { owners = new[] { "x" }, approvals_required = 1, simulated = new { snp = new[] { Hex.Of(OwnedFunction.NewSnp) } } }, host)).Expect(200);
        kms.Time.Advance(TimeSpan.FromMinutes(1));
        await OwnedFunction.RegisterAsync(c);
        (await c.PostAsync(Bundle, new { data = new { key = "approved" } })).Expect(200);

        var proposal = (await c.PutAsync("morphisms/functions/old", new { secret_path = Bundle }, host)).Expect(400);
        Assert.Contains("'secret_path': secret/data/signer is the secret bundle of function 'signer'", Assert.Single(proposal.Errors), StringComparison.Ordinal);
        var old = (await c.GetAsync("morphisms/functions/old")).Expect(200).Data;
        Assert.Null(old["secret_path"]);
        Assert.Empty(old["pending_updates"]!.AsArray());

        // A pending move holds its path from the proposal on: no other owned function may claim it meanwhile (a path
        // claimed anyway in a registry stored before this was checked is refused when the move would apply:
        // FunctionRegistryTests).
        const string Later = "secret/data/later";
        (await c.PutAsync("morphisms/functions/old", new { secret_path = Later }, host)).Expect(200);
        var later = (await c.PutAsync("morphisms/functions/later", new { owners = new[] { "alice" }, approvals_required = 1, secret_path = Later, simulated = new { snp = new[] { Hex.Of(OwnedFunction.NewSnp) } } })).Expect(400);
        Assert.Contains("'secret_path': secret/data/later is the secret bundle of function 'old'", Assert.Single(later.Errors), StringComparison.Ordinal);

        using var instance = new FunctionInstance();
        var signer = await LoginAsync(c, instance, "signer", FunctionInstance.SnpMeasurement);
        Assert.Equal("approved", (await c.GetAsync(Bundle, signer)).Expect(200).Data["data"]!["key"]!.GetValue<string>());
    }

    [Fact]
    public async Task A_function_made_owned_again_cannot_take_back_a_path_it_left_that_another_owned_function_holds_now()
    {
        // signer moves off its bundle (the path it leaves stays its own), then its owners drop the approvals: unowned, it
        // holds nothing, so another owned function may be registered at the path it left.
        await using var kms = await TestKms.StartUnsealedAsync(SimulatedTees.TrustingSimulated);
        var c = kms.Client;
        await OwnedFunction.RegisterAsync(c);
        var host = await HostWritingPoliciesAsync(c);
        var alice = await OwnedFunction.OwnerTokenAsync(c, "alice");
        var bob = await OwnedFunction.OwnerTokenAsync(c, "bob");
        (await c.PutAsync("morphisms/functions/signer", new { secret_path = "secret/data/moved" }, host)).Expect(200);
        (await c.PutAsync("morphisms/functions/signer", new { approvals_required = 0 }, host)).Expect(200);
        foreach (var update in new[] { 1, 2 })
        {
            (await c.PostAsync($"morphisms/functions/signer/updates/{update}/approve", null, alice)).Expect(200);
            Assert.Equal("applied", (await c.PostAsync($"morphisms/functions/signer/updates/{update}/approve", null, bob)).Expect(200).Data["status"]!.GetValue<string>());
        }

        var signer = (await c.GetAsync("morphisms/functions/signer")).Expect(200).Data;
        Assert.Equal(0, signer["approvals_required"]!.GetValue<int>());
        Assert.Equal([Bundle], signer["former_secret_paths"]!.AsArray().Select(n => n!.GetValue<string>()));
        kms.Time.Advance(TimeSpan.FromMinutes(1));
        (await c.PutAsync("morphisms/functions/victim", new { owners = new[] { "carol" }, approvals_required = 1, secret_path = Bundle, simulated = new { snp = new[] { Hex.Of(FunctionInstance.SnpMeasurement) } } })).Expect(200);
        (await c.PostAsync(Bundle, new { data = new { key = "victim's" } })).Expect(200);

        // One write that applies at once (signer requires no approvals now): owners and code of the host's choosing.
        // Owned again, signer would hold the path it left as well as its own, and, registered first, win it.
        var takeover = (await c.PutAsync("morphisms/functions/signer", new
        {
            owners = new[] { "mallory" },
            approvals_required = 1,
            simulated = new { snp = new[] { Hex.Of(OwnedFunction.NewSnp) } },
        }, host)).Expect(400);
        Assert.Contains("'secret_path': secret/data/signer is the secret bundle of function 'victim'", Assert.Single(takeover.Errors), StringComparison.Ordinal);
        Assert.Contains("(for function 'signer' it is a path it moved away from", takeover.Errors[0], StringComparison.Ordinal);
        Assert.Equal(0, (await c.GetAsync("morphisms/functions/signer")).Expect(200).Data["approvals_required"]!.GetValue<int>());

        using var instance = new FunctionInstance();
        var decoy = await LoginAsync(c, instance, "signer", FunctionInstance.SnpMeasurement);
        Assert.Contains("secret bundle of function 'victim'", Assert.Single((await c.GetAsync(Bundle, decoy)).Expect(403).Errors), StringComparison.Ordinal);
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

    /// <summary>
    /// The host registers signer without owners, with code of its own, keeps a token of its instance, then writes the
    /// good values with owners, which applies at once: the earlier revision is retired and its token revoked — and
    /// should that revocation stop short (<paramref name="revocationFails"/>), the bundle guard still refuses the token.
    /// </summary>
    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public async Task Instances_of_code_from_before_the_function_was_owned_do_not_read_the_bundle(bool revocationFails)
    {
        var audit = Path.Combine(Directory.CreateTempSubdirectory("kms-owned-bundle-").FullName, "audit.log");
        var storage = new FailingIndexStorage();
        await using var kms = await TestKms.StartUnsealedAsync(o => SimulatedTees.TrustingSimulated(o) with { AuditLogPath = audit }, physical: storage);
        var c = kms.Client;
        var host = await HostWritingPoliciesAsync(c);
        (await c.PutAsync("sys/policies/acl/morph-fn-signer", new { policy = $$"""path "{{Bundle}}" { capabilities = ["read"] }""" }, host)).Expect(204);
        (await c.PutAsync("morphisms/functions/signer", new { policies = new[] { "morph-fn-signer" }, simulated = new { snp = new[] { Hex.Of(OwnedFunction.NewSnp) } } }, host)).Expect(200);
        using var instance = new FunctionInstance();
        var early = await LoginAsync(c, instance, "signer", OwnedFunction.NewSnp);

        storage.FailIndexListing = revocationFails;
        var write = await c.PutAsync("morphisms/functions/signer", new
        {
            owners = new[] { "alice", "bob" },
            approvals_required = 2,
            simulated = new { snp = new[] { Hex.Of(FunctionInstance.SnpMeasurement) } },
        }, host);
        Assert.Equal(revocationFails ? 500 : 200, write.Status);
        (await c.PostAsync(Bundle, new { data = new { key = "approved" } })).Expect(200);

        var refused = Assert.Single((await c.GetAsync(Bundle, early)).Expect(403).Errors);
        Assert.Equal(["retired", "active"], (await c.GetAsync("morphisms/functions/signer")).Expect(200).Data["revisions"]!.AsArray().Select(r => r!["status"]!.GetValue<string>()));
        if (revocationFails)
        {
            // The token is still valid, but its revision is retired: the guard refuses it; retiring again revokes it.
            Assert.Contains("secret bundle of function 'signer'", refused, StringComparison.Ordinal);
            (await c.PostAsync("auth/token/lookup", new { token = early })).Expect(200);
            Assert.Equal(1, (await c.PostAsync("morphisms/functions/signer/revisions/1/retire")).Expect(200).Data["tokens_revoked"]!.GetValue<int>());
        }

        (await c.PostAsync("auth/token/lookup", new { token = early })).Expect(403);
        var approved = await LoginAsync(c, instance, "signer", FunctionInstance.SnpMeasurement);
        Assert.Equal("approved", (await c.GetAsync(Bundle, approved)).Expect(200).Data["data"]!["key"]!.GetValue<string>());
        var nonce = await AttestFlow.ChallengeAsync(c, "signer");
        Assert.Contains("revision retired", Assert.Single((await AttestFlow.LoginAsync(c, "snp", instance.SnpReport(nonce, OwnedFunction.NewSnp), nonce, instance.CsrPem, "signer")).Expect(403).Errors), StringComparison.Ordinal);
        Assert.Contains("\"type\":\"function-revision-retired\"", await File.ReadAllTextAsync(audit), StringComparison.Ordinal);
        Directory.Delete(Path.GetDirectoryName(audit)!, recursive: true);
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

    /// <summary>In-memory storage whose listings of signer's issued index fail while <see cref="FailIndexListing"/> is set (a revocation cut short).</summary>
    private sealed class FailingIndexStorage : ForwardingStorage
    {
        public bool FailIndexListing { get; set; }

        public override Task<IReadOnlyList<string>> ListAsync(string prefix, CancellationToken cancellationToken = default)
        {
            if (FailIndexListing && prefix.StartsWith("morphisms/issued/signer/", StringComparison.Ordinal))
            {
                FailIndexListing = false;
                throw new IOException("simulated: the node stopped");
            }

            return Inner.ListAsync(prefix, cancellationToken);
        }

        public override Task<IReadOnlyList<KeyValuePair<string, byte[]>>> ReadAllAsync(CancellationToken cancellationToken = default) => Inner.ReadAllAsync(cancellationToken);
    }
}
