namespace Morphisms.Kms.Tests.Updates;

/// <summary>
/// Deleting a function that requires owner approval leaves a tombstone, so that deleting and registering the name
/// again cannot bypass the owners: the new registration is an update of the deleted function.
/// </summary>
public sealed class TombstoneTests : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("kms-tombstones-").FullName;

    [Fact]
    public async Task Deleting_and_registering_other_values_waits_for_the_owners_then_logs_in()
    {
        await using var kms = await StartAsync();
        var c = kms.Client;
        await OwnedFunction.RegisterAsync(c);
        var host = await OwnedFunction.HostTokenAsync(c);
        var alice = await OwnedFunction.OwnerTokenAsync(c, "alice");
        var bob = await OwnedFunction.OwnerTokenAsync(c, "bob");

        // The host deletes the function at once; the answer says the name stays with its owners.
        var deleted = (await c.DeleteAsync("morphisms/functions/signer", host)).Expect(200);
        Assert.True(deleted.Data["tombstone"]!.GetValue<bool>());
        Assert.Contains(deleted.Body!["warnings"]!.AsArray(), w => w!.GetValue<string>().Contains("stays with its owners", StringComparison.Ordinal));
        Assert.Contains("was deleted", (await c.GetAsync("morphisms/functions/signer", host)).Expect(404).Errors[0], StringComparison.Ordinal);
        (await c.ListAsync("morphisms/functions", host)).Expect(404);

        // Registering the name again with new code is a pending restore, not a registration: nothing can log in as signer.
        var write = (await c.PutAsync("morphisms/functions/signer", OwnedFunction.Values(OwnedFunction.NewSnp), host)).Expect(200);
        (await c.PostAsync("auth/attest/challenge", new { function = "signer" }, token: "")).Expect(404);
        var pending = write.Data["pending_update"];
        Assert.NotNull(pending);
        Assert.Equal("restore", pending["kind"]!.GetValue<string>());
        Assert.Contains(write.Body!["warnings"]!.AsArray(), w => w!.GetValue<string>().Contains("no instance can log in", StringComparison.Ordinal));
        var id = pending["id"]!.GetValue<int>();
        (await c.GetAsync("morphisms/functions/signer", host)).Expect(404);
        var tombstone = (await c.GetAsync("morphisms/functions/signer/tombstone", host)).Expect(200).Data;
        Assert.Equal([id], tombstone["pending_updates"]!.AsArray().Select(n => n!.GetValue<int>()));
        Assert.Equal(["alice", "bob", "mallory-not"], tombstone["owners"]!.AsArray().Select(n => n!.GetValue<string>()));

        // The host cannot approve; one owner is not enough; the second applies it.
        (await c.PostAsync($"morphisms/functions/signer/updates/{id}/approve", null, host)).Expect(403);
        Assert.Equal("pending", (await c.PostAsync($"morphisms/functions/signer/updates/{id}/approve", null, alice)).Expect(200).Data["status"]!.GetValue<string>());
        (await c.PostAsync("auth/attest/challenge", new { function = "signer" }, token: "")).Expect(404);
        var applied = (await c.PostAsync($"morphisms/functions/signer/updates/{id}/approve", null, bob)).Expect(200).Data;
        Assert.Equal("applied", applied["status"]!.GetValue<string>());
        Assert.Equal(2, applied["applied_revision"]!.GetValue<int>());

        using var instance = new FunctionInstance();
        var function = (await c.GetAsync("morphisms/functions/signer")).Expect(200).Data;
        Assert.Equal(2, function["current_revision"]!.GetValue<int>());
        Assert.Null(function["deleted_time"]);
        (await c.GetAsync("morphisms/functions/signer/tombstone")).Expect(404);
        Assert.Equal(2, (await OwnedFunction.LoginAsync(c, instance, OwnedFunction.NewSnp)).Expect(200).Data["revision"]!.GetValue<int>());
        (await OwnedFunction.LoginAsync(c, instance, FunctionInstance.SnpMeasurement)).Expect(403);

        var audit = await File.ReadAllTextAsync(Path.Combine(_dir, "audit.log"));
        foreach (var type in new[] { "function-tombstoned", "function-update-proposed", "function-update-approved", "function-update-applied", "function-restored" })
        {
            Assert.Contains($"\"type\":\"{type}\"", audit, StringComparison.Ordinal);
        }
    }

    [Fact]
    public async Task Registering_what_the_owners_approved_restores_at_once_and_anything_else_waits()
    {
        await using var kms = await StartAsync();
        var c = kms.Client;
        await OwnedFunction.RegisterAsync(c);
        var host = await OwnedFunction.HostTokenAsync(c);
        using var instance = new FunctionInstance();
        var token = (await OwnedFunction.LoginAsync(c, instance, FunctionInstance.SnpMeasurement)).Expect(200).Auth["client_token"]!.GetValue<string>();

        // An update pending at the delete is cancelled with it, and what was issued is revoked as before.
        (await c.PutAsync("morphisms/functions/signer", OwnedFunction.Values(OwnedFunction.NewSnp), host)).Expect(200);
        Assert.Equal([1], (await c.DeleteAsync("morphisms/functions/signer", host)).Expect(200).Data["cancelled_updates"]!.AsArray().Select(n => n!.GetValue<int>()));
        Assert.Equal("cancelled", (await c.GetAsync("morphisms/functions/signer/updates/1")).Expect(200).Data["status"]!.GetValue<string>());
        (await c.PostAsync("auth/token/lookup", new { token })).Expect(403);

        // The approved values with other owners or another threshold are gated like any change of them.
        var owners = (await c.PutAsync("morphisms/functions/signer", new { owners = new[] { "host" }, approvals_required = 1 }, host)).Expect(200).Data;
        Assert.Equal(["host"], owners["pending_update"]!["owners"]!.AsArray().Select(n => n!.GetValue<string>()));
        var threshold = (await c.PutAsync("morphisms/functions/signer", new { approvals_required = 1 }, host)).Expect(200).Data;
        Assert.Equal(1, threshold["pending_update"]!["new_approvals_required"]!.GetValue<int>());
        (await c.GetAsync("morphisms/functions/signer")).Expect(404);

        // The approved values themselves come back at once, as revision 1; the restore's pending updates are cancelled.
        var restored = (await c.PutAsync("morphisms/functions/signer", OwnedFunction.Values(FunctionInstance.SnpMeasurement), host)).Expect(200);
        Assert.Null(restored.Data["pending_update"]);
        Assert.Equal(1, restored.Data["current_revision"]!.GetValue<int>());
        Assert.Contains(restored.Body!["warnings"]!.AsArray(), w => w!.GetValue<string>().Contains("registered again", StringComparison.Ordinal));
        Assert.Empty((await c.GetAsync("morphisms/functions/signer")).Expect(200).Data["pending_updates"]!.AsArray());
        Assert.Equal(1, (await OwnedFunction.LoginAsync(c, instance, FunctionInstance.SnpMeasurement)).Expect(200).Data["revision"]!.GetValue<int>());
        Assert.Contains("\"type\":\"function-restored\"", await File.ReadAllTextAsync(Path.Combine(_dir, "audit.log")), StringComparison.Ordinal);

        // Deleting again is a tombstone again; retiring its values there means even they need the owners' approval.
        (await c.DeleteAsync("morphisms/functions/signer", host)).Expect(200);
        (await c.PostAsync("morphisms/functions/signer/revisions/1/retire")).Expect(200);
        var retired = (await c.PutAsync("morphisms/functions/signer", OwnedFunction.Values(FunctionInstance.SnpMeasurement), host)).Expect(200).Data;
        Assert.Equal("restore", retired["pending_update"]!["kind"]!.GetValue<string>());
    }

    [Fact]
    public async Task A_function_without_approvals_is_deleted_for_good_and_registered_afresh()
    {
        await using var kms = await StartAsync();
        var c = kms.Client;
        await AttestFlow.RegisterSignerAsync(c);
        var host = await OwnedFunction.HostTokenAsync(c);

        (await c.DeleteAsync("morphisms/functions/signer", host)).Expect(204);
        (await c.GetAsync("morphisms/functions/signer/tombstone", host)).Expect(404);
        var write = (await c.PutAsync("morphisms/functions/signer", OwnedFunction.Values(OwnedFunction.NewSnp), host)).Expect(200).Data;
        Assert.Null(write["pending_update"]);

        // Another function, but its revisions number on from the deleted one's (revision 1), never sharing theirs.
        Assert.Equal(2, write["current_revision"]!.GetValue<int>());
        Assert.Empty(write["owners"]!.AsArray());

        using var instance = new FunctionInstance();
        Assert.Equal(2, (await OwnedFunction.LoginAsync(c, instance, OwnedFunction.NewSnp)).Expect(200).Data["revision"]!.GetValue<int>());
    }

    [Fact]
    public async Task A_tombstone_survives_sealing_and_unsealing()
    {
        await using var kms = await StartAsync();
        var c = kms.Client;
        await OwnedFunction.RegisterAsync(c);
        (await c.DeleteAsync("morphisms/functions/signer")).Expect(200);

        (await c.PutAsync("sys/seal")).Expect(204);
        await kms.UnsealAsync();

        var write = (await c.PutAsync("morphisms/functions/signer", OwnedFunction.Values(OwnedFunction.NewSnp))).Expect(200).Data;
        Assert.NotNull(write["pending_update"]);
        Assert.Equal("restore", write["pending_update"]!["kind"]!.GetValue<string>());
        Assert.Equal(2, (await c.GetAsync("morphisms/functions/signer/tombstone")).Expect(200).Data["approvals_required"]!.GetValue<int>());
        (await c.GetAsync("morphisms/functions/signer")).Expect(404);
    }

    [Fact]
    public async Task Owners_release_the_name_by_approving_a_purge()
    {
        await using var kms = await StartAsync();
        var c = kms.Client;
        await OwnedFunction.RegisterAsync(c);
        var host = await OwnedFunction.HostTokenAsync(c);
        (await c.DeleteAsync("morphisms/functions/signer", host)).Expect(200);

        // A second delete leaves the tombstone alone; proposing a purge needs an owner or sudo, and is proposed once.
        (await c.DeleteAsync("morphisms/functions/signer", host)).Expect(204);
        (await c.DeleteAsync("morphisms/functions/signer/tombstone", await OwnedFunction.PlainTokenAsync(c))).Expect(403);
        var purge = (await c.DeleteAsync("morphisms/functions/signer/tombstone", host)).Expect(200).Data;
        Assert.Equal("purge", purge["kind"]!.GetValue<string>());
        var id = purge["id"]!.GetValue<int>();
        Assert.Equal(id, (await c.DeleteAsync("morphisms/functions/signer/tombstone", host)).Expect(200).Data["id"]!.GetValue<int>());
        (await c.DeleteAsync("morphisms/functions/nobody/tombstone")).Expect(404);

        (await c.PostAsync($"morphisms/functions/signer/updates/{id}/approve", null, await OwnedFunction.OwnerTokenAsync(c, "alice"))).Expect(200);
        Assert.Equal("applied", (await c.PostAsync($"morphisms/functions/signer/updates/{id}/approve", null, await OwnedFunction.OwnerTokenAsync(c, "bob"))).Expect(200).Data["status"]!.GetValue<string>());
        (await c.GetAsync("morphisms/functions/signer/tombstone")).Expect(404);

        // The name is free: the host registers new code directly.
        var write = (await c.PutAsync("morphisms/functions/signer", OwnedFunction.Values(OwnedFunction.NewSnp), host)).Expect(200).Data;
        Assert.Null(write["pending_update"]);
        Assert.Empty(write["owners"]!.AsArray());
        Assert.Equal(2, write["current_revision"]!.GetValue<int>());
        Assert.Contains("\"type\":\"function-tombstone-purged\"", await File.ReadAllTextAsync(Path.Combine(_dir, "audit.log")), StringComparison.Ordinal);
    }

    [Fact]
    public async Task Writing_to_a_tombstoned_name_needs_update_not_create()
    {
        await using var kms = await StartAsync();
        var c = kms.Client;
        await OwnedFunction.RegisterAsync(c);
        (await c.DeleteAsync("morphisms/functions/signer")).Expect(200);
        var creator = await TokenAsync(c, "creator", "create");
        var updater = await TokenAsync(c, "updater", "update");

        // The tombstoned name exists for the ACL: a token that may only create gets no further than 403, and the
        // tombstone is left as it was.
        (await c.PutAsync("morphisms/functions/signer", OwnedFunction.Values(OwnedFunction.NewSnp), creator)).Expect(403);
        Assert.Empty((await c.GetAsync("morphisms/functions/signer/tombstone")).Expect(200).Data["pending_updates"]!.AsArray());
        var write = (await c.PutAsync("morphisms/functions/signer", OwnedFunction.Values(OwnedFunction.NewSnp), updater)).Expect(200).Data;
        Assert.Equal("restore", write["pending_update"]!["kind"]!.GetValue<string>());

        // A free name is still a create, and a registered one an update.
        (await c.PutAsync("morphisms/functions/fresh", OwnedFunction.Values(OwnedFunction.NewSnp), updater)).Expect(403);
        (await c.PutAsync("morphisms/functions/fresh", OwnedFunction.Values(OwnedFunction.NewSnp), creator)).Expect(200);
        (await c.PutAsync("morphisms/functions/fresh", OwnedFunction.Values(FunctionInstance.SnpMeasurement), creator)).Expect(403);
        (await c.PutAsync("morphisms/functions/fresh", OwnedFunction.Values(FunctionInstance.SnpMeasurement), updater)).Expect(200);
    }

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    /// <summary>A token whose only capability on the registry's names, besides sudo, is <paramref name="capability"/>.</summary>
    private static async Task<string> TokenAsync(VaultHttp c, string policy, string capability)
    {
        (await c.PutAsync("sys/policies/acl/" + policy, new { policy = $$"""path "morphisms/functions/*" { capabilities = ["{{capability}}", "sudo"] }""" })).Expect(204);
        return (await c.PostAsync("auth/token/create", new { policies = new[] { policy } })).Expect(200).Auth["client_token"]!.GetValue<string>();
    }

    private Task<TestKms> StartAsync() =>
        TestKms.StartUnsealedAsync(o => SimulatedTees.TrustingSimulated(o) with { AuditLogPath = Path.Combine(_dir, "audit.log") });
}
