using System.Text.Json.Nodes;
using Microsoft.Extensions.Time.Testing;
using Morphisms.Kms.Barrier;
using Morphisms.Kms.Functions;
using Morphisms.Kms.Http;
using Morphisms.Kms.Storage;

namespace Morphisms.Kms.Tests.Functions;

public class FunctionRegistryTests
{
    private static readonly TimeSpan KmsMax = TimeSpan.FromHours(768);
    private readonly FakeTimeProvider _time = new(SimulatedTees.Epoch);
    private readonly FunctionRegistry _registry;
    private readonly InMemoryStorage _physical = new();

    public FunctionRegistryTests()
    {
        _registry = new FunctionRegistry(new BarrierStorage(_physical, Keyring.Create(SimulatedTees.Epoch)), _time);
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

    private static FunctionSpec Spec(string json) =>
        FunctionSpec.Parse(new Fields(JsonNode.Parse(json.Replace("A48", new string('a', 96), StringComparison.Ordinal).Replace("B48", new string('b', 96), StringComparison.Ordinal))!.AsObject()));
}
