using Morphisms.Kms.Updates;

namespace Morphisms.Kms.Tests.Updates;

/// <summary>Logins prune a revision's expired index entries at most once a minute, so a login's cost does not grow with the number of live logins.</summary>
public sealed class IssuedIndexPruningTests
{
    [Fact]
    public void Pruning_is_due_once_per_minute_per_revision()
    {
        var retirement = new FunctionRetirement(null!);
        var t0 = new DateTimeOffset(2026, 11, 22, 12, 0, 0, TimeSpan.Zero);

        Assert.True(retirement.PruneDue("signer", 1, t0));
        Assert.False(retirement.PruneDue("signer", 1, t0.AddSeconds(59)));
        Assert.True(retirement.PruneDue("signer", 2, t0.AddSeconds(59)));
        Assert.True(retirement.PruneDue("hello", 1, t0.AddSeconds(59)));
        Assert.True(retirement.PruneDue("signer", 1, t0.AddSeconds(60)));
        Assert.False(retirement.PruneDue("signer", 1, t0.AddSeconds(61)));
    }

    [Fact]
    public async Task Concurrent_logins_prune_once()
    {
        var retirement = new FunctionRetirement(null!);
        var now = DateTimeOffset.UnixEpoch.AddDays(20000);
        var due = await Task.WhenAll(Enumerable.Range(0, 64).Select(_ => Task.Run(() => retirement.PruneDue("signer", 1, now))));
        Assert.Single(due, d => d);
    }
}
