using Microsoft.Extensions.Time.Testing;
using Npgsql;
using Morphisms.Kms.HighAvailability;
using Morphisms.Kms.Storage;

namespace Morphisms.Kms.Tests.HighAvailability;

/// <summary>
/// A standby's view of the active node's address, read from PostgreSQL (untrusted storage): used only while its MAC
/// verifies under the key both nodes derive from the root key and the row is fresh (no earlier term's row written
/// back), and a refusal is logged once per leader term, not once per read.
/// </summary>
public sealed class HaLeaderAddressTests(PostgresFixture postgres) : IClassFixture<PostgresFixture>
{
    private static readonly TimeSpan Patience = TimeSpan.FromSeconds(30);

    [Fact]
    public async Task A_standby_drops_an_address_that_fails_authentication_and_warns_once_per_term()
    {
        var connectionString = await postgres.Server.CreateDatabaseAsync();
        await using var active = new KmsCore(PostgresStorage.Open(connectionString), new KmsServerOptions { Storage = "postgres", WarningWriter = TextWriter.Null });
        var log = new StringWriter();
        await using var standby = new KmsCore(PostgresStorage.Open(connectionString), new KmsServerOptions { Storage = "postgres", WarningWriter = TextWriter.Synchronized(log) });
        var init = await active.InitializeAsync(1, 1, unseal: false, CancellationToken.None);
        await active.SubmitUnsealKeyAsync(init.Keys[0].ToArray(), CancellationToken.None);
        await active.Election!.StartAsync(new Uri("https://kms-1.internal:8200"), CancellationToken.None);
        Assert.True(active.Serving);
        await standby.SubmitUnsealKeyAsync(init.Keys[0].ToArray(), CancellationToken.None);
        await standby.Election!.StartAsync(new Uri("https://kms-2.internal:8200"), CancellationToken.None);
        Assert.True(standby.Standby);
        await WaitUntilAsync(() => standby.Election.Leader?.Address == new Uri("https://kms-1.internal:8200"));

        await using var db = new NpgsqlConnection(connectionString);
        await db.OpenAsync();
        async Task SetAsync(string assignment)
        {
            await using var tamper = new NpgsqlCommand($"UPDATE kms_ha_leader SET {assignment} WHERE id = 1", db);
            Assert.Equal(1, await tamper.ExecuteNonQueryAsync());
        }

        List<string> Warnings() => [.. log.ToString().Split('\n').Where(l => l.Contains("failed authentication", StringComparison.Ordinal))];

        // Tampered: a node holds the lock, but the standby has no address for it; one warning however many rounds pass.
        await SetAsync("api_addr = 'https://evil.example:8200'");
        await WaitUntilAsync(() => standby.Election.Leader is { Address: null });
        await SetAsync("api_addr = 'https://evil-2.example:8200'");
        await Task.Delay(LeaderElection.Interval * 3);
        Assert.Null(standby.Election.Leader!.Address);
        var warning = Assert.Single(Warnings());
        Assert.DoesNotContain("evil", warning, StringComparison.Ordinal);

        // The row as the active node wrote it verifies again; altered once more, it is warned about once more. (Not
        // the MAC: the active node rewrites that with every lease renewal.)
        await SetAsync("api_addr = 'https://kms-1.internal:8200'");
        await WaitUntilAsync(() => standby.Election.Leader?.Address == new Uri("https://kms-1.internal:8200"));
        await SetAsync("node_id = 'someone-else'");
        await WaitUntilAsync(() => standby.Election.Leader is { Address: null });
        await WaitUntilAsync(() => Warnings().Count == 2);
        Assert.True(active.Serving);
    }

    [Fact]
    public async Task A_standby_does_not_redirect_to_an_earlier_terms_row_written_back()
    {
        // A fake clock for all three nodes: the active node's lease renewal (which finds the written-back row and
        // starts a new term) is due only when the test advances it, so the standby reads that row however slowly it
        // starts. (Rounds still run every LeaderElection.Interval of real time.)
        var connectionString = await postgres.Server.CreateDatabaseAsync();
        var time = new FakeTimeProvider(DateTimeOffset.UtcNow);
        var options = new KmsServerOptions { Storage = "postgres", WarningWriter = TextWriter.Null, TimeProvider = time };
        var decommissioned = new Uri("https://kms-old.internal:8200");
        var old = new KmsCore(PostgresStorage.Open(connectionString), options);
        var init = await old.InitializeAsync(1, 1, unseal: false, CancellationToken.None);
        await old.SubmitUnsealKeyAsync(init.Keys[0].ToArray(), CancellationToken.None);
        await old.Election!.StartAsync(decommissioned, CancellationToken.None);
        Assert.True(old.Serving);

        // Whoever can read the database keeps the row of this term, MAC and all...
        await using var db = new NpgsqlConnection(connectionString);
        await db.OpenAsync();
        async Task RunAsync(string sql)
        {
            await using var command = new NpgsqlCommand(sql, db);
            await command.ExecuteNonQueryAsync();
        }

        await RunAsync("CREATE TABLE captured AS SELECT * FROM kms_ha_leader");

        // ... the node is decommissioned (its address may now be anyone's), and two others carry on, a little later
        // (so the new term's lease ends after the captured one's, as it would by any clock).
        await old.DisposeAsync();
        time.Advance(TimeSpan.FromSeconds(1));
        await using var b = new KmsCore(PostgresStorage.Open(connectionString), options);
        var log = new StringWriter();
        await using var c = new KmsCore(PostgresStorage.Open(connectionString), options with { WarningWriter = TextWriter.Synchronized(log) });
        await b.SubmitUnsealKeyAsync(init.Keys[0].ToArray(), CancellationToken.None);
        await b.Election!.StartAsync(new Uri("https://kms-b.internal:8200"), CancellationToken.None);
        Assert.True(b.Serving);
        await c.SubmitUnsealKeyAsync(init.Keys[0].ToArray(), CancellationToken.None);
        await c.Election!.StartAsync(new Uri("https://kms-c.internal:8200"), CancellationToken.None);
        await WaitUntilAsync(() => c.Election.Leader?.Address == new Uri("https://kms-b.internal:8200"));

        // The old row, written back while b holds the lock, verifies under the cluster's key: the standby refuses it
        // (warning that it is from an earlier term) and never redirects to it, round after round.
        await RunAsync("DELETE FROM kms_ha_leader; INSERT INTO kms_ha_leader SELECT * FROM captured");
        async Task NoRedirectToTheOldRowAsync()
        {
            foreach (var node in new[] { b, c }.Where(n => !n.Election!.IsActive))
            {
                Assert.NotEqual(decommissioned, (await node.Election!.CurrentLeaderAsync(CancellationToken.None))?.Address);
            }
        }

        var deadline = DateTime.UtcNow + Patience;
        while (!log.ToString().Contains("earlier leader term", StringComparison.Ordinal))
        {
            await NoRedirectToTheOldRowAsync();
            Assert.True(DateTime.UtcNow < deadline, $"the standby never warned about the earlier term's row (b active: {b.Election.IsActive})");
            await Task.Delay(10);
        }

        var until = DateTime.UtcNow + LeaderElection.Interval * 3;
        while (DateTime.UtcNow < until)
        {
            await NoRedirectToTheOldRowAsync();
            await Task.Delay(10);
        }

        // The active node's renewal, due now, finds the row is not its term's and it is elected anew: redirects resume.
        time.Advance(PostgresLeaderLock.LeaseRenewal);
        deadline = DateTime.UtcNow + Patience;
        while (!(b.Election.IsActive != c.Election.IsActive
            && (b.Election.IsActive ? c : b).Election!.Leader?.Address == new Uri(b.Election.IsActive ? "https://kms-b.internal:8200" : "https://kms-c.internal:8200")))
        {
            await NoRedirectToTheOldRowAsync();
            Assert.True(DateTime.UtcNow < deadline, "timed out");
            await Task.Delay(10);
        }
    }

    [Fact]
    public async Task The_active_node_renews_its_lease_so_standbys_keep_redirecting_past_it()
    {
        var connectionString = await postgres.Server.CreateDatabaseAsync();
        var time = new FakeTimeProvider(DateTimeOffset.UtcNow);
        var options = new KmsServerOptions { Storage = "postgres", WarningWriter = TextWriter.Null, TimeProvider = time };
        await using var active = new KmsCore(PostgresStorage.Open(connectionString), options);
        await using var standby = new KmsCore(PostgresStorage.Open(connectionString), options);
        var init = await active.InitializeAsync(1, 1, unseal: false, CancellationToken.None);
        await active.SubmitUnsealKeyAsync(init.Keys[0].ToArray(), CancellationToken.None);
        await active.Election!.StartAsync(new Uri("https://kms-1.internal:8200"), CancellationToken.None);
        await standby.SubmitUnsealKeyAsync(init.Keys[0].ToArray(), CancellationToken.None);
        await standby.Election!.StartAsync(new Uri("https://kms-2.internal:8200"), CancellationToken.None);
        await WaitUntilAsync(() => standby.Election.Leader?.Address == new Uri("https://kms-1.internal:8200"));

        await using var db = new NpgsqlConnection(connectionString);
        await db.OpenAsync();
        async Task<DateTime> LeaseAsync()
        {
            await using var read = new NpgsqlCommand("SELECT lease_until FROM kms_ha_leader WHERE id = 1", db);
            return (DateTime)(await read.ExecuteScalarAsync())!;
        }

        // Three leases' worth of time: each renewal keeps the address usable.
        for (var renewed = 0; renewed < 3 * PostgresLeaderLock.Lease / PostgresLeaderLock.LeaseRenewal; renewed++)
        {
            var lease = await LeaseAsync();
            time.Advance(PostgresLeaderLock.LeaseRenewal);
            var deadline = DateTime.UtcNow + Patience;
            while (await LeaseAsync() == lease)
            {
                Assert.True(DateTime.UtcNow < deadline, "the active node did not renew its lease");
                await Task.Delay(10);
            }

            Assert.Equal(new Uri("https://kms-1.internal:8200"), (await standby.Election.CurrentLeaderAsync(CancellationToken.None))?.Address);
        }

        Assert.True(active.Serving);
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
