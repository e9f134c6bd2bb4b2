namespace Morphisms.Cli.Tests.Kms;

/// <summary><c>morph kms server</c>'s PostgreSQL and HA flags are checked before anything starts, and never echo a connection string.</summary>
public class KmsServerHaOptionsTests
{
    [Theory]
    [InlineData("--storage", "postgres:Host=db;Password=hunter2-secret")]
    [InlineData("--storage", "postgresql://kms:hunter2-secret@db/kms")]
    [InlineData("--storage", "postgres:file=")]
    [InlineData("--storage", "sqlite:/tmp/x.db", "--api-addr", "https://kms-1:8200")]
    [InlineData("--storage", "postgres", "--api-addr", "ftp://kms-1:8200")]
    [InlineData("--storage", "postgres", "--api-addr", "https://kms-1:8200/v1?x=hunter2-secret")]
    [InlineData("--storage", "postgres", "--api-addr", "kms-1:8200")]
    public async Task Postgres_storage_and_api_address_are_checked_first(params string[] args)
    {
        var outcome = await MorphRunner.RunAsync(["kms", "server", "--listen", "127.0.0.1:0", .. args]);
        Assert.Equal(ExitCodes.UsageOrInput, outcome.ExitCode);
        Assert.StartsWith("morph: ", outcome.Stderr, StringComparison.Ordinal);
        if (args[1].Contains("hunter2", StringComparison.Ordinal))
        {
            Assert.DoesNotContain("hunter2-secret", outcome.Stderr, StringComparison.Ordinal);
        }
    }

    [Fact]
    public async Task A_plain_http_api_address_is_refused_on_a_node_that_serves_tls()
    {
        // Standbys redirect clients, token and body included, to this address: in clear, from a node that serves TLS.
        var outcome = await MorphRunner.RunAsync(["kms", "server", "--listen", "127.0.0.1:0", "--storage", "postgres", "--tls-self", "--api-addr", "http://kms-1:8200"]);
        Assert.Equal(ExitCodes.UsageOrInput, outcome.ExitCode);
        Assert.StartsWith("morph: --api-addr: ", outcome.Stderr, StringComparison.Ordinal);
        Assert.Contains("https://", outcome.Stderr, StringComparison.Ordinal);
    }
}
