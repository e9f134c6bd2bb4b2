using Npgsql;
using Morphisms.Kms.HighAvailability;
using Morphisms.Kms.Storage;

namespace Morphisms.Kms.Tests.HighAvailability;

/// <summary>
/// A standby's view of the active node's address, read from PostgreSQL (untrusted storage): used only while its MAC
/// verifies under the key both nodes derive from the root key, and a failure is logged once per leader term, not
/// once per read.
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

        // The row as the active node wrote it verifies again; altered once more, it is warned about once more.
        await SetAsync("api_addr = 'https://kms-1.internal:8200'");
        await WaitUntilAsync(() => standby.Election.Leader?.Address == new Uri("https://kms-1.internal:8200"));
        await SetAsync("api_addr_mac = NULL");
        await WaitUntilAsync(() => standby.Election.Leader is { Address: null });
        await WaitUntilAsync(() => Warnings().Count == 2);
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
