using Morphisms.Kms.Barrier;
using Morphisms.Kms.Pki;
using Morphisms.Kms.Storage;
using Morphisms.Kms.Updates;

namespace Morphisms.Kms.Tests.Updates;

/// <summary>Logins prune a revision's expired index entries at most once a minute, so a login's cost does not grow with the number of live logins.</summary>
/// <remarks>Certificate entries are pruned once revoking them could no longer change a CRL (past <see cref="PkiBackend.ExpiredRetention"/>).</remarks>
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

    [Fact]
    public async Task A_pruning_login_drops_certificate_entries_past_the_crl_retention_only()
    {
        var barrier = new BarrierStorage(new InMemoryStorage(), Keyring.Create(SimulatedTees.Epoch));
        var t0 = SimulatedTees.Epoch;
        async Task AddAsync(string serial, DateTimeOffset now, bool prune)
        {
            var writes = new WriteSet();
            await IssuedCredentials.AddAsync(barrier, new IssuedLogin("signer", 1, "hash-" + serial, now.AddHours(1), serial, now.AddHours(1)), now, prune, writes, default);
            await writes.CommitAsync(default);
        }

        await AddAsync("aa", t0, prune: false);
        await AddAsync("bb", t0.AddMinutes(30), prune: false);
        await barrier.PutAsync(IssuedCredentials.CertKey("signer", 1, "cc"), "{}"u8.ToArray()); // an entry from before expiries were recorded

        // aa is past its expiry plus the retention, bb expired but within it: only aa goes.
        var now = t0.AddHours(1) + PkiBackend.ExpiredRetention + TimeSpan.FromMinutes(1);
        await AddAsync("dd", now, prune: true);
        Assert.Equal(["bb", "cc", "dd"], (await IssuedCredentials.CertEntriesAsync(barrier, "signer", 1, default)).Select(e => e.Serial).Order());

        // Without the prune flag nothing goes.
        await AddAsync("ee", now.AddHours(1), prune: false);
        Assert.Equal(["bb", "cc", "dd", "ee"], (await IssuedCredentials.CertEntriesAsync(barrier, "signer", 1, default)).Select(e => e.Serial).Order());
    }
}
