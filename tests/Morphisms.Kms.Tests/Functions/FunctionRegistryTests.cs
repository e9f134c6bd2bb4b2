using System.Text.Json.Nodes;
using Microsoft.Extensions.Time.Testing;
using Morphisms.Kms.Barrier;
using Morphisms.Kms.Functions;
using Morphisms.Kms.Http;
using Morphisms.Kms.Storage;
using Morphisms.Kms.Updates;

namespace Morphisms.Kms.Tests.Functions;

public class FunctionRegistryTests
{
    private static readonly TimeSpan KmsMax = TimeSpan.FromHours(768);
    private readonly FakeTimeProvider _time = new(SimulatedTees.Epoch);
    private readonly FunctionRegistry _registry;
    private readonly InMemoryStorage _physical = new();
    private readonly BarrierStorage _barrier;

    public FunctionRegistryTests()
    {
        _barrier = new BarrierStorage(_physical, Keyring.Create(SimulatedTees.Epoch));
        _registry = new FunctionRegistry(_barrier, _time, NoKvKeys);
    }

    [Fact]
    public async Task A_name_registered_afresh_after_a_delete_numbers_its_revisions_on_from_the_deleted_function()
    {
        await _registry.PutAsync("signer", Spec("""{"simulated":{"snp":["A48"]}}"""), KmsMax, default);
        await _registry.PutAsync("signer", Spec("""{"simulated":{"snp":["B48"]}}"""), KmsMax, default);
        var deleted = await _registry.DeleteAsync("signer", default);
        Assert.NotNull(deleted.Record);
        Assert.Equal(2, deleted.LastRevision);

        // Nothing registered: nothing deleted, and the number is still known (what a DELETE again revokes up to).
        var again = await _registry.DeleteAsync("signer", default);
        Assert.Null(again.Record);
        Assert.Equal(2, again.LastRevision);

        // The mark is durable: a registry over the same storage (a restart, another HA node) numbers on from it too.
        var restarted = new FunctionRegistry(_barrier, _time, NoKvKeys);
        var fresh = (await restarted.PutAsync("signer", Spec("""{"simulated":{"snp":["A48"]}}"""), KmsMax, default)).Record;
        Assert.Equal([3], fresh.Revisions.Select(r => r.Revision));
        Assert.Equal(3, (await restarted.DeleteAsync("signer", default)).LastRevision);
        Assert.Equal(4, (await restarted.PutAsync("signer", Spec("""{"simulated":{"snp":["A48"]}}"""), KmsMax, default)).Record.Current!.Revision);

        // A name never deleted starts at 1.
        Assert.Equal(1, (await restarted.PutAsync("other", Spec("""{"simulated":{"snp":["A48"]}}"""), KmsMax, default)).Record.Current!.Revision);
        Assert.Equal(0, (await restarted.DeleteAsync("nobody", default)).LastRevision);
    }

    [Fact]
    public async Task Purging_a_tombstone_from_before_marks_were_kept_keeps_its_last_revision()
    {
        await _registry.PutAsync("signer", Spec("""{"owners":["alice"],"approvals_required":1,"simulated":{"snp":["A48"]}}"""), KmsMax, default);
        Assert.NotNull((await _registry.DeleteAsync("signer", default)).Tombstone);
        await _barrier.DeleteAsync("morphisms/deleted/signer");

        var (_, purge, _) = await _registry.ProposePurgeAsync("signer", default);
        await _registry.ApproveAsync("signer", purge.Id, "alice", default);
        Assert.Null(await _registry.GetTombstoneAsync("signer", default));
        Assert.Equal(2, (await _registry.PutAsync("signer", Spec("""{"simulated":{"snp":["B48"]}}"""), KmsMax, default)).Record.Current!.Revision);
    }

    [Fact]
    public async Task A_deletion_from_before_marks_were_kept_is_numbered_past_by_what_it_left_in_the_issued_index()
    {
        // A function deleted by an earlier version left credentials indexed under revision 4 and no mark.
        const string Left = "morphisms/issued/signer/4/certs/0a";
        await _barrier.PutAsync(Left, "{}"u8.ToArray());
        Assert.Equal(5, (await _registry.PutAsync("signer", Spec("""{"simulated":{"snp":["A48"]}}"""), KmsMax, default)).Record.Current!.Revision);
        await _registry.DeleteAsync("signer", default);
        await _barrier.DeleteAsync(Left);

        // A DELETE again of such a name records the number at once: once its revocation empties the index, a fresh
        // registration still numbers past it.
        await _barrier.PutAsync("morphisms/issued/legacy/7/certs/0a", "{}"u8.ToArray());
        Assert.Equal(7, (await _registry.DeleteAsync("legacy", default)).LastRevision);
        await _barrier.DeleteAsync("morphisms/issued/legacy/7/certs/0a");
        Assert.Equal(8, (await _registry.PutAsync("legacy", Spec("""{"simulated":{"snp":["A48"]}}"""), KmsMax, default)).Record.Current!.Revision);
    }

    [Fact]
    public async Task Each_new_set_of_reference_values_is_a_revision_and_the_older_ones_are_superseded()
    {
        await _registry.PutAsync("signer", Spec("""{"simulated":{"snp":["A48"]}}"""), KmsMax, default);
        _time.Advance(TimeSpan.FromMinutes(1));
        await _registry.PutAsync("signer", Spec("""{"simulated":{"snp":["B48"]}}"""), KmsMax, default);
        await _registry.PutAsync("signer", Spec("""{"simulated":{"snp":["B48"]}}"""), KmsMax, default);
        await _registry.PutAsync("signer", Spec("""{"owners":["carol"]}"""), KmsMax, default);

        var record = (await _registry.GetAsync("signer", default))!;
        Assert.Equal([1, 2], record.Revisions.Select(r => r.Revision));
        Assert.Equal([RevisionStatus.Superseded, RevisionStatus.Active], record.Revisions.Select(r => r.Status));
        Assert.Equal(2, Assert.Single(record.ActiveRevisions).Revision);
        Assert.Equal(["carol"], record.Owners);
        Assert.Equal(SimulatedTees.Epoch, record.CreatedTime);
        Assert.Equal(SimulatedTees.Epoch.AddMinutes(1), record.UpdatedTime);
        Assert.Equal(30, record.TokenTtl);
        Assert.Equal(3600, record.TokenMaxTtl);
    }

    [Fact]
    public async Task Records_are_encrypted_under_the_barrier()
    {
        await _registry.PutAsync("signer", Spec("""{"owners":["alice@example.com"],"simulated":{"snp":["A48"]}}"""), KmsMax, default);
        var raw = _physical.Snapshot()["morphisms/functions/signer"];
        Assert.DoesNotContain("alice", System.Text.Encoding.UTF8.GetString(raw), StringComparison.Ordinal);
    }

    [Fact]
    public async Task Token_lifetimes_are_checked_against_each_other_and_the_kms_maximum()
    {
        await _registry.PutAsync("signer", Spec("""{"token_max_ttl":"10m","simulated":{"snp":["A48"]}}"""), KmsMax, default);
        var error = await Assert.ThrowsAsync<KmsException>(() => _registry.PutAsync("signer", Spec("""{"token_ttl":"11m"}"""), KmsMax, default));
        Assert.Contains("'token_ttl'", error.Message, StringComparison.Ordinal);
        error = await Assert.ThrowsAsync<KmsException>(() => _registry.PutAsync("signer", Spec("""{"token_max_ttl":"2h"}"""), TimeSpan.FromHours(1), default));
        Assert.Contains("'token_max_ttl'", error.Message, StringComparison.Ordinal);
        Assert.Equal(600, (await _registry.GetAsync("signer", default))!.TokenMaxTtl);
    }

    [Fact]
    public async Task A_move_applies_only_while_no_other_owned_function_holds_the_path_even_in_a_registry_stored_before_claims_were_checked()
    {
        await _registry.PutAsync("old", Spec("""{"owners":["x"],"approvals_required":1,"simulated":{"snp":["A48"]}}"""), KmsMax, default);
        var move = (await _registry.PutAsync("old", Spec("""{"secret_path":"secret/data/later"}"""), KmsMax, default)).Proposed!;

        // Written directly, as an earlier version could have: another owned function holds the path the move names.
        await _barrier.PutJsonAsync("morphisms/functions/later", new FunctionRecord { Name = "later", Owners = ["alice"], ApprovalsRequired = 1, SecretPath = "secret/data/later" });

        var refused = await Assert.ThrowsAsync<KmsException>(() => _registry.ApproveAsync("old", move.Id, "x", default));
        Assert.Equal(400, refused.StatusCode);
        Assert.Contains("'secret_path': secret/data/later is the secret bundle of function 'later'", Assert.Single(refused.Errors), StringComparison.Ordinal);
        var old = (await _registry.GetAsync("old", default))!;
        Assert.Null(old.SecretPath);
        Assert.Equal(UpdateStatus.Pending, Assert.Single(old.Updates).Status);
        Assert.Equal("later", (await _registry.OwnedBundlesAsync(default))["secret/data/later"].Name);
    }

    [Fact]
    public async Task Snp_values_stored_before_a_tcb_floor_was_required_keep_working_and_may_be_re_sent_but_not_changed()
    {
        // As an earlier version stored them: an snp section with neither minimum_tcb nor allow_any_tcb.
        await _barrier.PutJsonAsync("morphisms/functions/legacy", new FunctionRecord
        {
            Name = "legacy",
            TokenTtl = 30,
            TokenMaxTtl = 3600,
            Revisions = [new FunctionRevision { Revision = 1, Status = RevisionStatus.Active, CreatedTime = SimulatedTees.Epoch, ReferenceValues = LegacySnp('a') }],
        });
        Assert.DoesNotContain("allow_any_tcb", System.Text.Encoding.UTF8.GetString((await _barrier.GetAsync("morphisms/functions/legacy"))!), StringComparison.Ordinal);

        // The host re-sends what is registered at every deploy: no new revision, so nothing newly unchecked.
        var resent = await _registry.PutAsync("legacy", Spec(LegacySnpJson('a')), KmsMax, default);
        Assert.Equal([1], resent.Record.Revisions.Select(r => r.Revision));

        // New values without a floor are a new registration: refused, naming the field, and nothing written.
        var refused = await Assert.ThrowsAsync<KmsException>(() => _registry.PutAsync("legacy", Spec(LegacySnpJson('b')), KmsMax, default));
        Assert.Equal(400, refused.StatusCode);
        Assert.Contains("'snp.minimum_tcb' is missing", Assert.Single(refused.Errors), StringComparison.Ordinal);
        var stored = (await _registry.GetAsync("legacy", default))!;
        Assert.Equal(new string('a', 96), Assert.Single(Assert.Single(stored.Revisions).ReferenceValues.Snp!.Measurements));
        Assert.Equal(SimulatedTees.Epoch, stored.UpdatedTime);
    }

    [Fact]
    public async Task An_owned_function_may_re_send_its_stored_snp_values_or_a_pending_proposal_of_them_without_a_tcb_floor()
    {
        await _barrier.PutJsonAsync("morphisms/functions/owned", new FunctionRecord
        {
            Name = "owned",
            Owners = ["alice"],
            ApprovalsRequired = 1,
            TokenTtl = 30,
            TokenMaxTtl = 3600,
            Revisions = [new FunctionRevision { Revision = 1, Status = RevisionStatus.Active, CreatedTime = SimulatedTees.Epoch, ReferenceValues = LegacySnp('a') }],
            Updates = [new PendingUpdate { Id = 1, Status = UpdateStatus.Pending, CreatedTime = SimulatedTees.Epoch, ReferenceValues = LegacySnp('b') }],
            NextUpdateId = 2,
        });

        Assert.Null((await _registry.PutAsync("owned", Spec(LegacySnpJson('a')), KmsMax, default)).Proposed);
        var repeated = await _registry.PutAsync("owned", Spec(LegacySnpJson('b')), KmsMax, default);
        Assert.True(repeated.Repeated);
        Assert.Equal(1, repeated.Proposed!.Id);

        var refused = await Assert.ThrowsAsync<KmsException>(() => _registry.PutAsync("owned", Spec(LegacySnpJson('c')), KmsMax, default));
        Assert.Contains("'snp.minimum_tcb' is missing", Assert.Single(refused.Errors), StringComparison.Ordinal);
        var stored = (await _registry.GetAsync("owned", default))!;
        Assert.Equal([1], stored.Updates.Select(u => u.Id));
        Assert.Equal(2, stored.NextUpdateId);
    }

    /// <summary>SNP reference values without a TCB floor or the opt-out, as stored before a floor was required.</summary>
    private static ReferenceValues LegacySnp(char measurement) =>
        new() { Snp = new SnpReference { Measurements = [new string(measurement, 96)], HostData = new string('c', 64) } };

    private static string LegacySnpJson(char measurement) => $$$"""{"snp":{"measurements":["{{{new string(measurement, 96)}}}"],"host_data":"{{{new string('c', 64)}}}"}}""";

    /// <summary>The KV probe of a registry without KV mounts: no path holds a key.</summary>
    private static Task<bool> NoKvKeys(string path, CancellationToken ct) => Task.FromResult(false);

    private static FunctionSpec Spec(string json) =>
        FunctionSpec.Parse(new Fields(JsonNode.Parse(json.Replace("A48", new string('a', 96), StringComparison.Ordinal).Replace("B48", new string('b', 96), StringComparison.Ordinal))!.AsObject()));
}
