using System.Text;
using Morphisms.Kms.Storage;

namespace Morphisms.Kms.Tests.Storage;

/// <summary>
/// The write-ahead log is copied into the database file by <see cref="WalCheckpointer"/>, never inside a commit: what
/// the tests look at is where a marker value is on disk (the log or the database file).
/// </summary>
public sealed class SqliteCheckpointTests : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("kms-checkpoint-").FullName;

    private string DbPath => Path.Combine(_dir, "kms.db");

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    [Fact]
    public async Task The_background_checkpointer_copies_committed_writes_into_the_database_file()
    {
        var marker = Marker();
        await using var storage = SqliteStorage.Open(DbPath, TimeSpan.FromMilliseconds(10));
        await storage.PutAsync("marker", marker);

        // A few small commits never reach SQLite's own threshold: only the checkpointer can have copied them.
        Assert.True(await EventuallyAsync(() => DatabaseFileHolds(marker)), "the committed value never reached the database file");

        // The counter moves once the checkpoint call returns, a moment after the copy is visible in the file.
        Assert.True(await EventuallyAsync(() => storage.Checkpoints >= 1), "no checkpoint was counted");
        Assert.Equal(marker, await storage.GetAsync("marker"));
    }

    [Fact]
    public async Task A_commit_does_not_checkpoint_even_past_sqlites_default_threshold()
    {
        var marker = Marker();
        var storage = SqliteStorage.Open(DbPath, TimeSpan.FromHours(1));
        try
        {
            // The first commit's checkpoint runs at once; after it the checkpointer pauses for the hour.
            await storage.PutAsync("first", new byte[] { 1 });
            Assert.True(await EventuallyAsync(() => storage.Checkpoints >= 1), "no background checkpoint ran");

            await storage.PutAsync("marker", marker);

            // ~1 500 pages of log, past SQLite's default of 1 000 at which the commit crossing it would checkpoint,
            // copying the marker with it.
            var value = new byte[4000];
            for (var t = 0; t < 100; t++)
            {
                await storage.TransactAsync([.. Enumerable.Range(0, 8).Select(i => StorageOperation.Put($"bulk/{t}/{i}", value))]);
            }

            Assert.True(File.ReadAllBytes(DbPath + "-wal").AsSpan().IndexOf(marker) >= 0, "the marker is not in the log");
            Assert.False(DatabaseFileHolds(marker), "a commit checkpointed the log into the database file");
        }
        finally
        {
            await storage.DisposeAsync();
        }

        // Closing checkpoints what is left: the same check now finds it, so it could have found it above.
        Assert.True(DatabaseFileHolds(marker));
    }

    private static byte[] Marker() => Encoding.ASCII.GetBytes("checkpoint-marker-" + Guid.NewGuid().ToString("N"));

    private bool DatabaseFileHolds(byte[] marker) => File.ReadAllBytes(DbPath).AsSpan().IndexOf(marker) >= 0;

    private static async Task<bool> EventuallyAsync(Func<bool> condition)
    {
        var deadline = DateTime.UtcNow + TimeSpan.FromSeconds(10);
        while (!condition())
        {
            if (DateTime.UtcNow > deadline)
            {
                return false;
            }

            await Task.Delay(10);
        }

        return true;
    }
}
