using Morphisms.Kms.HighAvailability;
using Morphisms.Kms.Storage;
using Npgsql;

namespace Morphisms.Kms.Tests.HighAvailability;

/// <summary>
/// A node that wins the lock again must not let a request still running on its previous term's state write under the
/// new epoch: that state may predate another node's term (a rotated key, a revoked token) and would overwrite it.
/// </summary>
public sealed class HaPromotionTests(PostgresFixture postgres) : IClassFixture<PostgresFixture>
{
    private static readonly TimeSpan Patience = TimeSpan.FromSeconds(30);

    [Fact]
    public async Task A_request_of_the_previous_term_cannot_write_under_the_epoch_the_node_wins_next()
    {
        var connectionString = await postgres.Server.CreateDatabaseAsync();
        var options = new KmsServerOptions { Storage = "postgres", WarningWriter = TextWriter.Null };
        await using var core = new KmsCore(PostgresStorage.Open(connectionString), options);
        var init = await core.InitializeAsync(1, 1, unseal: false, CancellationToken.None);
        await core.SubmitUnsealKeyAsync(init.Keys[0].ToArray(), CancellationToken.None);
        await core.Election!.StartAsync(new Uri("http://127.0.0.1:1"), CancellationToken.None);
        Assert.True(core.Serving);

        // A request of this term is still running (it holds its lease) when the node loses its lock session...
        var old = core.Acquire()!;
        await using (var db = new NpgsqlConnection(connectionString))
        {
            await db.OpenAsync();
            await using var kill = new NpgsqlCommand(
                "SELECT count(pg_terminate_backend(pid)) FROM pg_locks WHERE locktype = 'advisory' AND granted AND database = (SELECT oid FROM pg_database WHERE datname = current_database())",
                db);
            Assert.Equal(1L, await kill.ExecuteScalarAsync());
        }

        // ... steps down, and (no other node competing) wins the lock again in a new term while the request still runs.
        await WaitUntilAsync(() => !core.Election.IsActive);
        await WaitUntilAsync(() => core.Election.IsActive);

        // The old state's write must be refused: only the state loaded for the new term may write under its epoch.
        await Assert.ThrowsAsync<StandbyWriteException>(() => old.Barrier.PutAsync("stale/write", "old term"u8.ToArray()));
        old.Release();

        await WaitUntilAsync(() => core.Serving);
        var state = core.Acquire()!;
        try
        {
            Assert.Null(await state.Barrier.GetAsync("stale/write"));
            await state.Barrier.PutAsync("fresh/write", "new term"u8.ToArray());
        }
        finally
        {
            state.Release();
        }
    }

    [Fact]
    public async Task A_rekey_attempt_ends_with_the_term_it_was_started_in_and_its_shares_are_wiped()
    {
        // Another node may rekey (and store core/rekey-pending) while this one is standby: an attempt kept in memory
        // across the change of leader would hide that record and, finished later, overwrite it.
        var connectionString = await postgres.Server.CreateDatabaseAsync();
        var options = new KmsServerOptions { Storage = "postgres", WarningWriter = TextWriter.Null };
        await using var core = new KmsCore(PostgresStorage.Open(connectionString), options);
        var init = await core.InitializeAsync(3, 2, unseal: false, CancellationToken.None);
        await core.SubmitUnsealKeyAsync(init.Keys[0].ToArray(), CancellationToken.None);
        await core.SubmitUnsealKeyAsync(init.Keys[1].ToArray(), CancellationToken.None);
        await core.Election!.StartAsync(new Uri("http://127.0.0.1:1"), CancellationToken.None);
        Assert.True(core.Serving);

        var state = core.Acquire()!;
        var attempt = await core.RekeyInitAsync(1, 1, requireVerification: true, state, CancellationToken.None);
        Assert.Null(await core.RekeyUpdateAsync(init.Keys[0].ToArray(), attempt.Nonce, state, CancellationToken.None));
        state.Release();
        Assert.Equal(1, attempt.Shares.Count);

        await using (var db = new NpgsqlConnection(connectionString))
        {
            await db.OpenAsync();
            await using var kill = new NpgsqlCommand(
                "SELECT count(pg_terminate_backend(pid)) FROM pg_locks WHERE locktype = 'advisory' AND granted AND database = (SELECT oid FROM pg_database WHERE datname = current_database())",
                db);
            Assert.Equal(1L, await kill.ExecuteScalarAsync());
        }

        await WaitUntilAsync(() => !core.Election.IsActive);
        await WaitUntilAsync(() => core.Election.IsActive && core.Serving);

        // The new term starts with no attempt (GET sys/rekey/init: started false) and the share collected is zeroed.
        state = core.Acquire()!;
        try
        {
            await core.LoadPendingRekeyAsync(state, CancellationToken.None);
            Assert.Null(core.Rekey);
            Assert.Equal(0, attempt.Shares.Count);
            Assert.Contains("no rekey in progress", (await Assert.ThrowsAsync<Morphisms.Kms.Http.KmsException>(
                () => core.RekeyUpdateAsync(init.Keys[1].ToArray(), attempt.Nonce, state, CancellationToken.None))).Message, StringComparison.Ordinal);
        }
        finally
        {
            state.Release();
        }
    }

    private static async Task WaitUntilAsync(Func<bool> condition)
    {
        var deadline = DateTime.UtcNow + Patience;
        while (!condition())
        {
            Assert.True(DateTime.UtcNow < deadline, "timed out");
            await Task.Delay(10);
        }
    }
}
