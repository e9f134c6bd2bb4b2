using System.Text.Json.Nodes;
using Morphisms.Attestation;

namespace Morphisms.Kms.Tests.Updates;

/// <summary>
/// An owned function's secret path is gated like its reference values: the path decides which secrets the attested
/// code receives as its own, so a registry writer who is not an owner (the serving host) must not be able to point it
/// at a path it can write.
/// </summary>
public sealed class SecretPathUpdateTests : IDisposable
{
    private const string Approved = "secret/data/signer";
    private const string HostChosen = "secret/data/host-chosen";

    private readonly string _dir = Directory.CreateTempSubdirectory("kms-secret-path-").FullName;

    [Fact]
    public async Task A_host_pointing_an_owned_function_at_another_path_proposes_an_update_and_logins_keep_the_approved_path()
    {
        await using var kms = await StartAsync();
        var c = kms.Client;
        await RegisterAsync(c, approvalsRequired: 2);
        var host = await OwnedFunction.HostTokenAsync(c);
        var alice = await OwnedFunction.OwnerTokenAsync(c, "alice");
        var bob = await OwnedFunction.OwnerTokenAsync(c, "bob");

        // What the serving host sends at a deploy, with the same code but a path whose contents it chose.
        var write = (await c.PutAsync("morphisms/functions/signer", HostSpec(HostChosen), host)).Expect(200);
        Assert.Equal(Approved, write.Data["secret_path"]!.GetValue<string>());
        var pending = write.Data["pending_update"]!;
        Assert.Equal(HostChosen, pending["secret_path"]!.GetValue<string>());
        Assert.Null(pending["reference_values"]);
        Assert.Contains(write.Body!["warnings"]!.AsArray(), w => w!.GetValue<string>().Contains("pending update 1 holds the new secret path", StringComparison.Ordinal));
        var function = (await c.GetAsync("morphisms/functions/signer", host)).Expect(200).Data;
        Assert.Equal(Approved, function["secret_path"]!.GetValue<string>());
        Assert.Equal([1], function["pending_updates"]!.AsArray().Select(n => n!.GetValue<int>()));

        // A login is still told the approved path, and its token reads the approved bundle there.
        using var instance = new FunctionInstance();
        var login = (await OwnedFunction.LoginAsync(c, instance, FunctionInstance.SnpMeasurement)).Expect(200);
        Assert.Equal(Approved, login.Data["secret_path"]!.GetValue<string>());
        var token = login.Auth["client_token"]!.GetValue<string>();
        Assert.Equal("approved", (await c.GetAsync(Approved, token)).Expect(200).Data["data"]!["key"]!.GetValue<string>());

        // The host cannot approve, one owner is not enough, the second applies it.
        (await c.PostAsync("morphisms/functions/signer/updates/1/approve", null, host)).Expect(403);
        (await c.PostAsync("morphisms/functions/signer/updates/1/approve", null, alice)).Expect(200);
        Assert.Equal(Approved, (await OwnedFunction.LoginAsync(c, instance, FunctionInstance.SnpMeasurement)).Expect(200).Data["secret_path"]!.GetValue<string>());
        var applied = (await c.PostAsync("morphisms/functions/signer/updates/1/approve", null, bob)).Expect(200).Data;
        Assert.Equal("applied", applied["status"]!.GetValue<string>());
        Assert.Null(applied["applied_revision"]);
        function = (await c.GetAsync("morphisms/functions/signer")).Expect(200).Data;
        Assert.Equal(HostChosen, function["secret_path"]!.GetValue<string>());
        Assert.Equal(1, function["current_revision"]!.GetValue<int>());
        Assert.Equal(HostChosen, (await OwnedFunction.LoginAsync(c, instance, FunctionInstance.SnpMeasurement)).Expect(200).Data["secret_path"]!.GetValue<string>());

        // The audit trail names the path that was proposed and applied.
        var events = AuditEvents();
        Assert.Equal(HostChosen, events.Single(e => e["type"]!.GetValue<string>() == "function-update-proposed")["secret_path"]!.GetValue<string>());
        Assert.Equal(HostChosen, events.Single(e => e["type"]!.GetValue<string>() == "function-update-applied")["secret_path"]!.GetValue<string>());
    }

    [Fact]
    public async Task A_redeploy_that_repeats_or_omits_the_approved_path_proposes_nothing()
    {
        await using var kms = await StartAsync();
        var c = kms.Client;
        await RegisterAsync(c, approvalsRequired: 2);
        var host = await OwnedFunction.HostTokenAsync(c);
        (await c.PutAsync("sys/policies/acl/morph-fn-signer", new { policy = $$"""path "{{Approved}}" { capabilities = ["read"] }""" })).Expect(204);

        // The host's deploy re-sends the spec; the ungated policies change at once, the path is the approved one.
        var redeploy = (await c.PutAsync("morphisms/functions/signer", HostSpec(Approved, "morph-fn-signer"), host)).Expect(200);
        Assert.Null(redeploy.Data["pending_update"]);
        Assert.Null(redeploy.Body!["warnings"]);
        Assert.Equal(["morph-fn-signer"], redeploy.Data["policies"]!.AsArray().Select(n => n!.GetValue<string>()));

        // The same path written with slashes around it, or none at all, is no change either.
        Assert.Null((await c.PutAsync("morphisms/functions/signer", HostSpec("/" + Approved + "/", "morph-fn-signer"), host)).Expect(200).Data["pending_update"]);
        var ttl = (await c.PutAsync("morphisms/functions/signer", new { token_ttl = "45s" }, host)).Expect(200).Data;
        Assert.Null(ttl["pending_update"]);
        Assert.Equal(45, ttl["token_ttl"]!.GetValue<long>());

        var function = (await c.GetAsync("morphisms/functions/signer")).Expect(200).Data;
        Assert.Equal(Approved, function["secret_path"]!.GetValue<string>());
        Assert.Empty(function["pending_updates"]!.AsArray());
        Assert.DoesNotContain(AuditEvents(), e => e["type"]!.GetValue<string>() == "function-update-proposed");
    }

    [Fact]
    public async Task A_redeploy_naming_the_default_path_of_a_function_registered_without_one_proposes_nothing()
    {
        // The path in force is secret/data/NAME, which is what the serving host sends: no change, at every deploy.
        await using var kms = await StartAsync();
        var c = kms.Client;
        await RegisterAsync(c, approvalsRequired: 2, secretPath: null);
        var host = await OwnedFunction.HostTokenAsync(c);

        for (var deploy = 0; deploy < 3; deploy++)
        {
            var write = (await c.PutAsync("morphisms/functions/signer", HostSpec(Approved), host)).Expect(200);
            Assert.Null(write.Data["pending_update"]);
        }

        Assert.Empty((await c.GetAsync("morphisms/functions/signer")).Expect(200).Data["pending_updates"]!.AsArray());
    }

    [Fact]
    public async Task A_redeploy_repeating_a_pending_proposal_gets_that_update_back_not_another()
    {
        await using var kms = await StartAsync();
        var c = kms.Client;
        await RegisterAsync(c, approvalsRequired: 2);
        var host = await OwnedFunction.HostTokenAsync(c);

        for (var deploy = 0; deploy < 20; deploy++)
        {
            var write = (await c.PutAsync("morphisms/functions/signer", HostSpec(HostChosen), host)).Expect(200);
            Assert.Equal(1, write.Data["pending_update"]!["id"]!.GetValue<int>());
        }

        // A different proposal is a new update.
        var other = (await c.PutAsync("morphisms/functions/signer", HostSpec("secret/data/third"), host)).Expect(200);
        Assert.Equal(2, other.Data["pending_update"]!["id"]!.GetValue<int>());
        Assert.Equal([1, 2], (await c.GetAsync("morphisms/functions/signer")).Expect(200).Data["pending_updates"]!.AsArray().Select(n => n!.GetValue<int>()));
        Assert.Equal(2, AuditEvents().Count(e => e["type"]!.GetValue<string>() == "function-update-proposed"));
    }

    [Fact]
    public async Task A_function_without_required_approvals_takes_a_new_path_at_once()
    {
        await using var kms = await StartAsync();
        var c = kms.Client;
        await RegisterAsync(c, approvalsRequired: 0);
        (await c.PostAsync(HostChosen, new { data = new { key = "host's" } })).Expect(200);
        var host = await OwnedFunction.HostTokenAsync(c);

        var write = (await c.PutAsync("morphisms/functions/signer", HostSpec(HostChosen), host)).Expect(200).Data;
        Assert.Null(write["pending_update"]);
        Assert.Equal(HostChosen, write["secret_path"]!.GetValue<string>());

        using var instance = new FunctionInstance();
        var login = (await OwnedFunction.LoginAsync(c, instance, FunctionInstance.SnpMeasurement)).Expect(200);
        Assert.Equal(HostChosen, login.Data["secret_path"]!.GetValue<string>());
        Assert.Equal("host's", (await c.GetAsync(HostChosen, login.Auth["client_token"]!.GetValue<string>())).Expect(200).Data["data"]!["key"]!.GetValue<string>());
    }

    [Fact]
    public async Task Registering_a_deleted_owned_function_again_keeps_its_approved_path()
    {
        await using var kms = await StartAsync();
        var c = kms.Client;
        await RegisterAsync(c, approvalsRequired: 2);
        var host = await OwnedFunction.HostTokenAsync(c);
        (await c.DeleteAsync("morphisms/functions/signer", host)).Expect(200);

        // The approved code with another path is a pending restore: the name stays deleted.
        var other = (await c.PutAsync("morphisms/functions/signer", HostSpec(HostChosen), host)).Expect(200).Data;
        Assert.Equal("restore", other["pending_update"]!["kind"]!.GetValue<string>());
        Assert.Equal(HostChosen, other["pending_update"]!["secret_path"]!.GetValue<string>());
        Assert.Equal(Approved, other["secret_path"]!.GetValue<string>());
        (await c.PostAsync("auth/attest/challenge", new { function = "signer" }, token: "")).Expect(404);

        // The approved path, or none, restores it at once with that path.
        var restored = (await c.PutAsync("morphisms/functions/signer", HostSpec(Approved), host)).Expect(200).Data;
        Assert.Null(restored["pending_update"]);
        Assert.Equal(Approved, restored["secret_path"]!.GetValue<string>());
        (await c.DeleteAsync("morphisms/functions/signer", host)).Expect(200);
        Assert.Equal(Approved, (await c.PutAsync("morphisms/functions/signer", OwnedFunction.Values(FunctionInstance.SnpMeasurement), host)).Expect(200).Data["secret_path"]!.GetValue<string>());

        using var instance = new FunctionInstance();
        Assert.Equal(Approved, (await OwnedFunction.LoginAsync(c, instance, FunctionInstance.SnpMeasurement)).Expect(200).Data["secret_path"]!.GetValue<string>());
    }

    [Fact]
    public async Task A_move_to_a_path_that_already_holds_a_key_is_refused_when_proposed()
    {
        await using var kms = await StartAsync();
        var c = kms.Client;
        await RegisterAsync(c, approvalsRequired: 2);
        var host = await HostWritingKvAsync(c);

        // The host writes the path first, then points the function at it: whatever it wrote, the approved code would take as its own.
        (await c.PostAsync(HostChosen, new { data = new { key = "host's" } }, host)).Expect(200);
        var refused = (await c.PutAsync("morphisms/functions/signer", HostSpec(HostChosen), host)).Expect(400);
        Assert.Contains("'secret_path': secret/data/host-chosen already holds a KV key: an owned function moves its secret bundle only to an empty path", Assert.Single(refused.Errors), StringComparison.Ordinal);

        // A destroyed version still counts (its metadata is there, and a later write would be version 2 of that key).
        (await c.PostAsync("secret/destroy/host-chosen", new { versions = new[] { 1 } }, host)).Expect(204);
        (await c.PutAsync("morphisms/functions/signer", HostSpec(HostChosen), host)).Expect(400);
        var function = (await c.GetAsync("morphisms/functions/signer")).Expect(200).Data;
        Assert.Equal(Approved, function["secret_path"]!.GetValue<string>());
        Assert.Empty(function["pending_updates"]!.AsArray());
        Assert.DoesNotContain(AuditEvents(), e => e["type"]!.GetValue<string>() == "function-update-proposed");

        // Once the key is gone the move may be proposed.
        (await c.DeleteAsync("secret/metadata/host-chosen", host)).Expect(204);
        Assert.Equal(1, (await c.PutAsync("morphisms/functions/signer", HostSpec(HostChosen), host)).Expect(200).Data["pending_update"]!["id"]!.GetValue<int>());
    }

    [Fact]
    public async Task A_pending_move_holds_its_path_and_applies_only_while_the_path_is_still_empty()
    {
        await using var kms = await StartAsync();
        var c = kms.Client;
        await RegisterAsync(c, approvalsRequired: 2);
        var host = await HostWritingKvAsync(c);
        var alice = await OwnerWritingKvAsync(c, "alice");
        var bob = await OwnerWritingKvAsync(c, "bob");
        (await c.PutAsync("morphisms/functions/signer", HostSpec(HostChosen), host)).Expect(200);

        // From the proposal on only the owners (and root) reach the path: the host's write is refused.
        var hostWrite = (await c.PostAsync(HostChosen, new { data = new { key = "host's" } }, host)).Expect(403);
        Assert.Contains("secret bundle of function 'signer'", Assert.Single(hostWrite.Errors), StringComparison.Ordinal);

        // Something there when the move would apply (a write that raced the proposal, say) refuses it; the update stays pending.
        (await c.PostAsync(HostChosen, new { data = new { key = "raced" } })).Expect(200);
        (await c.PostAsync("morphisms/functions/signer/updates/1/approve", null, alice)).Expect(200);
        var refused = (await c.PostAsync("morphisms/functions/signer/updates/1/approve", null, bob)).Expect(400);
        Assert.Contains("'secret_path': secret/data/host-chosen already holds a KV key", Assert.Single(refused.Errors), StringComparison.Ordinal);
        var function = (await c.GetAsync("morphisms/functions/signer")).Expect(200).Data;
        Assert.Equal(Approved, function["secret_path"]!.GetValue<string>());
        Assert.Equal([1], function["pending_updates"]!.AsArray().Select(n => n!.GetValue<int>()));

        // The owners clear it, the move applies, and then they write the bundle the instances read.
        (await c.DeleteAsync("secret/metadata/host-chosen", alice)).Expect(204);
        Assert.Equal("applied", (await c.PostAsync("morphisms/functions/signer/updates/1/approve", null, bob)).Expect(200).Data["status"]!.GetValue<string>());
        (await c.PostAsync(HostChosen, new { data = new { key = "owners'" } }, host)).Expect(403);
        (await c.PostAsync(HostChosen, new { data = new { key = "owners'" } }, alice)).Expect(200);
        using var instance = new FunctionInstance();
        var login = (await OwnedFunction.LoginAsync(c, instance, FunctionInstance.SnpMeasurement)).Expect(200);
        Assert.Equal(HostChosen, login.Data["secret_path"]!.GetValue<string>());
        Assert.Equal("owners'", (await c.GetAsync(HostChosen, login.Auth["client_token"]!.GetValue<string>())).Expect(200).Data["data"]!["key"]!.GetValue<string>());
    }

    [Fact]
    public async Task The_path_a_move_leaves_stays_the_functions()
    {
        await using var kms = await StartAsync();
        var c = kms.Client;
        var (host, alice, bob) = await MovedToHostChosenAsync(c);
        var function = (await c.GetAsync("morphisms/functions/signer")).Expect(200).Data;
        Assert.Equal(HostChosen, function["secret_path"]!.GetValue<string>());
        Assert.Equal([Approved], function["former_secret_paths"]!.AsArray().Select(n => n!.GetValue<string>()));

        // Its stored versions are the function's secrets: a policy the host holds does not reach them now it reads
        // elsewhere, also after the host's next deploy writes the function again.
        Assert.Null((await c.PutAsync("morphisms/functions/signer", HostSpec(HostChosen), host)).Expect(200).Data["pending_update"]);
        foreach (var refused in new[]
        {
            await c.GetAsync(Approved, host),
            await c.GetAsync("secret/metadata/signer", host),
            await c.PostAsync(Approved, new { data = new { key = "host's" } }, host),
            await c.DeleteAsync("secret/metadata/signer", host),
        })
        {
            refused.Expect(403);
            Assert.Contains("secret bundle of function 'signer'", Assert.Single(refused.Errors), StringComparison.Ordinal);
        }

        // The owners still manage it, and a write cannot set the list.
        Assert.Equal("approved", (await c.GetAsync(Approved, alice)).Expect(200).Data["data"]!["key"]!.GetValue<string>());
        Assert.Contains("'former_secret_paths' is read-only", Assert.Single((await c.PutAsync("morphisms/functions/signer", new { former_secret_paths = Array.Empty<string>() }, host)).Expect(400).Errors), StringComparison.Ordinal);

        // Moving back takes it off the list (it must be empty again first) and lists the path it leaves.
        (await c.PutAsync("morphisms/functions/signer", HostSpec(Approved), host)).Expect(400);
        (await c.DeleteAsync("secret/metadata/signer", alice)).Expect(204);
        (await c.PutAsync("morphisms/functions/signer", HostSpec(Approved), host)).Expect(200);
        (await c.PostAsync("morphisms/functions/signer/updates/2/approve", null, alice)).Expect(200);
        (await c.PostAsync("morphisms/functions/signer/updates/2/approve", null, bob)).Expect(200);
        function = (await c.GetAsync("morphisms/functions/signer")).Expect(200).Data;
        Assert.Equal(Approved, function["secret_path"]!.GetValue<string>());
        Assert.Equal([HostChosen], function["former_secret_paths"]!.AsArray().Select(n => n!.GetValue<string>()));
    }

    [Fact]
    public async Task A_purge_does_not_release_paths_that_still_hold_the_deleted_functions_secrets()
    {
        await using var kms = await StartAsync();
        var c = kms.Client;
        var (host, alice, bob) = await MovedToHostChosenAsync(c);
        (await c.PostAsync(HostChosen, new { data = new { key = "moved" } }, alice)).Expect(200);
        (await c.DeleteAsync("morphisms/functions/signer", host)).Expect(200);

        // Both the bundle and the path it left hold secrets: no purge is proposed, and the tombstone stays.
        var refused = Assert.Single((await c.DeleteAsync("morphisms/functions/signer/tombstone", host)).Expect(400).Errors);
        Assert.Contains($"KV keys at {HostChosen}, {Approved}:", refused, StringComparison.Ordinal);
        Assert.Empty((await c.GetAsync("morphisms/functions/signer/tombstone")).Expect(200).Data["pending_updates"]!.AsArray());

        // The owners empty them and a purge is proposed; a key written again before it applies refuses the approval
        // that would apply it (nothing written, the purge still pending).
        (await c.DeleteAsync("secret/metadata/signer", alice)).Expect(204);
        (await c.DeleteAsync("secret/metadata/host-chosen", alice)).Expect(204);
        var purge = (await c.DeleteAsync("morphisms/functions/signer/tombstone", host)).Expect(200).Data["id"]!.GetValue<int>();
        (await c.PostAsync(Approved, new { data = new { key = "approved" } }, alice)).Expect(200);
        (await c.PostAsync($"morphisms/functions/signer/updates/{purge}/approve", null, alice)).Expect(200);
        refused = Assert.Single((await c.PostAsync($"morphisms/functions/signer/updates/{purge}/approve", null, bob)).Expect(400).Errors);
        Assert.Contains($"KV keys at {Approved}:", refused, StringComparison.Ordinal);
        Assert.Equal("pending", (await c.GetAsync($"morphisms/functions/signer/updates/{purge}", alice)).Expect(200).Data["status"]!.GetValue<string>());
        (await c.GetAsync("morphisms/functions/signer/tombstone")).Expect(200);

        // Emptied again, the purge applies; the host registers the name afresh without owners at the old path, and its
        // instance finds nothing there.
        (await c.DeleteAsync("secret/metadata/signer", alice)).Expect(204);
        Assert.Equal("applied", (await c.PostAsync($"morphisms/functions/signer/updates/{purge}/approve", null, bob)).Expect(200).Data["status"]!.GetValue<string>());
        (await c.GetAsync("morphisms/functions/signer/tombstone")).Expect(404);
        (await c.PutAsync("morphisms/functions/signer", HostSpec(Approved), host)).Expect(200);
        using var instance = new FunctionInstance();
        var token = (await OwnedFunction.LoginAsync(c, instance, FunctionInstance.SnpMeasurement)).Expect(200).Auth["client_token"]!.GetValue<string>();
        (await c.GetAsync(Approved, token)).Expect(404);
        (await c.GetAsync(HostChosen, token)).Expect(404);
    }

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    /// <summary>
    /// Registers <c>signer</c> at <see cref="Approved"/>, with a policy that could read both bundles (policies are not
    /// gated: a host that may write them could grant this), and writes its bundle (<see cref="HostChosen"/> stays empty:
    /// an owned function moves only to an empty path).
    /// </summary>
    private static async Task RegisterAsync(VaultHttp c, int approvalsRequired, string? secretPath = Approved)
    {
        (await c.PutAsync("sys/policies/acl/signer-read", new
        {
            policy = $$"""
                path "{{Approved}}" { capabilities = ["read"] }
                path "{{HostChosen}}" { capabilities = ["read"] }
                """,
        })).Expect(204);
        (await c.PutAsync("sys/policies/acl/owners", new { policy = """path "morphisms/functions/+/updates*" { capabilities = ["read", "list", "update", "delete"] }""" })).Expect(204);
        (await c.PutAsync("morphisms/functions/signer", new
        {
            owners = new[] { "alice", "bob", "mallory-not" },
            approvals_required = approvalsRequired,
            policies = new[] { "signer-read" },
            secret_path = secretPath,
            simulated = new { snp = new[] { Hex.Of(FunctionInstance.SnpMeasurement) } },
        })).Expect(200);
        (await c.PostAsync(Approved, new { data = new { key = "approved" } })).Expect(200);
    }

    /// <summary>The serving host's token with a policy on all of <c>secret/</c> too, which a host writing policies could grant itself.</summary>
    private static async Task<string> HostWritingKvAsync(VaultHttp c)
    {
        await OwnedFunction.HostTokenAsync(c);
        (await c.PutAsync("sys/policies/acl/kv-admin", new { policy = """path "secret/*" { capabilities = ["create", "read", "update", "delete", "list"] }""" })).Expect(204);
        return (await c.PostAsync("auth/token/create", new { policies = new[] { "serving-host", "kv-admin" } })).Expect(200).Auth["client_token"]!.GetValue<string>();
    }

    /// <summary>
    /// <see cref="RegisterAsync"/> with two approvals, then the host proposes the move to <see cref="HostChosen"/> and
    /// alice and bob approve it (update 1): the function reads there and <see cref="Approved"/> is a path it left.
    /// </summary>
    private static async Task<(string Host, string Alice, string Bob)> MovedToHostChosenAsync(VaultHttp c)
    {
        await RegisterAsync(c, approvalsRequired: 2);
        var host = await HostWritingKvAsync(c);
        var alice = await OwnerWritingKvAsync(c, "alice");
        var bob = await OwnerWritingKvAsync(c, "bob");
        (await c.PutAsync("morphisms/functions/signer", HostSpec(HostChosen), host)).Expect(200);
        (await c.PostAsync("morphisms/functions/signer/updates/1/approve", null, alice)).Expect(200);
        (await c.PostAsync("morphisms/functions/signer/updates/1/approve", null, bob)).Expect(200);
        return (host, alice, bob);
    }

    /// <summary>An owner's token allowed the update routes and KV (after <see cref="HostWritingKvAsync"/>, which writes the KV policy).</summary>
    private static async Task<string> OwnerWritingKvAsync(VaultHttp c, string owner) =>
        (await c.PostAsync("auth/token/create", new { policies = new[] { "owners", "kv-admin" }, meta = new { morphisms_owner = owner } })).Expect(200).Auth["client_token"]!.GetValue<string>();

    /// <summary>The body the serving host's <c>KmsRegistrar</c> sends at a deploy of the unchanged code.</summary>
    private static object HostSpec(string secretPath, string policy = "signer-read") => new
    {
        policies = new[] { policy },
        secret_path = secretPath,
        simulated = new { snp = new[] { Hex.Of(FunctionInstance.SnpMeasurement) } },
    };

    private Task<TestKms> StartAsync() =>
        TestKms.StartUnsealedAsync(o => SimulatedTees.TrustingSimulated(o) with { AuditLogPath = Path.Combine(_dir, "audit.log") });

    private List<JsonObject> AuditEvents() =>
        [.. File.ReadAllLines(Path.Combine(_dir, "audit.log")).Select(l => JsonNode.Parse(l) as JsonObject).OfType<JsonObject>().Where(e => e["type"] is not null)];
}
