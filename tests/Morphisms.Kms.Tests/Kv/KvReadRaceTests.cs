using System.Security.Cryptography;
using System.Text;
using Morphisms.Kms.Storage;

namespace Morphisms.Kms.Tests.Kv;

/// <summary>
/// A KV read takes no lock: a write committing between its metadata read and its data read may remove the version
/// the metadata named (pruned under max_versions, destroyed). The read must still answer one consistent state — never a
/// plain 404 for a key that exists, which a long-poll reader (the agent) would take for its bundle's deletion.
/// </summary>
public sealed class KvReadRaceTests
{
    [Fact]
    public async Task A_read_whose_version_is_pruned_between_its_metadata_and_data_reads_answers_the_new_version()
    {
        var storage = new HoldingReadStorage();
        await using var kms = await TestKms.StartUnsealedAsync(physical: storage);
        var c = kms.Client;
        (await c.PostAsync("secret/metadata/app", new { max_versions = 1 })).Expect(204);
        (await c.PostAsync("secret/data/app", new { data = new { v = "1" } })).Expect(200);

        // The read has loaded the metadata (current version 1) and is about to fetch version 1's data.
        storage.HoldSuffix = VersionSuffix("app", 1);
        var read = c.GetAsync("secret/data/app");
        try
        {
            await storage.Reached.Task.WaitAsync(TimeSpan.FromSeconds(10));
            (await c.PostAsync("secret/data/app", new { data = new { v = "2" } })).Expect(200);
        }
        finally
        {
            storage.Release.TrySetResult();
        }

        var answered = (await read.WaitAsync(TimeSpan.FromSeconds(10))).Expect(200).Data;
        Assert.Equal(2, answered["metadata"]!["version"]!.GetValue<long>());
        Assert.Equal("2", answered["data"]!["v"]!.GetValue<string>());
    }

    [Fact]
    public async Task A_parked_read_whose_version_is_pruned_while_it_reads_again_answers_the_newer_version_not_a_404()
    {
        var storage = new HoldingReadStorage();
        await using var kms = await TestKms.StartUnsealedAsync(physical: storage);
        var c = kms.Client;
        (await c.PostAsync("secret/metadata/app", new { max_versions = 1 })).Expect(204);
        (await c.PostAsync("secret/data/app", new { data = new { v = "1" } })).Expect(200);
        var parked = c.GetAsync("secret/data/app?wait_version_gt=1&wait=300s");
        await kms.WaitForKvWaitersAsync(1);

        // Version 2 wakes the reader, which loads the metadata (current 2) and is held before reading version 2's data;
        // version 3 then prunes version 2. A 404 here read as version 0, below the first read's 1: the wait ended as if
        // the key had been deleted.
        storage.HoldSuffix = VersionSuffix("app", 2);
        try
        {
            (await c.PostAsync("secret/data/app", new { data = new { v = "2" } })).Expect(200);
            await storage.Reached.Task.WaitAsync(TimeSpan.FromSeconds(10));
            (await c.PostAsync("secret/data/app", new { data = new { v = "3" } })).Expect(200);
        }
        finally
        {
            storage.Release.TrySetResult();
        }

        var answered = (await parked.WaitAsync(TimeSpan.FromSeconds(10))).Expect(200).Data;
        Assert.Equal(3, answered["metadata"]!["version"]!.GetValue<long>());
        Assert.Equal("3", answered["data"]!["v"]!.GetValue<string>());
        Assert.Equal(0, kms.Server.KvWaiters);
    }

    [Fact]
    public async Task A_read_whose_version_is_destroyed_meanwhile_answers_the_destroyed_versions_metadata()
    {
        var storage = new HoldingReadStorage();
        await using var kms = await TestKms.StartUnsealedAsync(physical: storage);
        var c = kms.Client;
        (await c.PostAsync("secret/data/app", new { data = new { v = "1" } })).Expect(200);

        storage.HoldSuffix = VersionSuffix("app", 1);
        var read = c.GetAsync("secret/data/app");
        try
        {
            await storage.Reached.Task.WaitAsync(TimeSpan.FromSeconds(10));
            (await c.PostAsync("secret/destroy/app", new { versions = new[] { 1 } })).Expect(204);
        }
        finally
        {
            storage.Release.TrySetResult();
        }

        // What a read after the destroy answers (Vault's 404 that still shows the version), not a bare 404.
        var answered = await read.WaitAsync(TimeSpan.FromSeconds(10));
        Assert.Equal(404, answered.Status);
        Assert.Equal(1, answered.Data["metadata"]!["version"]!.GetValue<long>());
        Assert.True(answered.Data["metadata"]!["destroyed"]!.GetValue<bool>());
    }

    private static string VersionSuffix(string path, long version) =>
        "/versions/" + Convert.ToHexStringLower(SHA256.HashData(Encoding.UTF8.GetBytes(path))) + "/" + version;

    /// <summary>In-memory storage that holds the first read of a key ending in <see cref="HoldSuffix"/> until released.</summary>
    private sealed class HoldingReadStorage : ForwardingStorage
    {
        private int _held;

        public string? HoldSuffix { get; set; }

        public TaskCompletionSource Reached { get; } = new(TaskCreationOptions.RunContinuationsAsynchronously);

        public TaskCompletionSource Release { get; } = new(TaskCreationOptions.RunContinuationsAsynchronously);

        public override async Task<byte[]?> GetAsync(string key, CancellationToken cancellationToken = default)
        {
            if (HoldSuffix is { } hold && key.EndsWith(hold, StringComparison.Ordinal) && Interlocked.Exchange(ref _held, 1) == 0)
            {
                Reached.SetResult();
                await Release.Task;
            }

            return await Inner.GetAsync(key, cancellationToken);
        }
    }
}
