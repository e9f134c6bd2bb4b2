using Microsoft.Data.Sqlite;
using Morphisms.Kms.Storage;

namespace Morphisms.Kms.Tests.Storage;

/// <summary>SQLite's group commit: many transactions per fsync, each still all-or-nothing and durable on its own.</summary>
public sealed class SqliteGroupCommitTests : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("kms-sqlite-group-").FullName;

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    [Fact]
    public async Task Concurrent_transactions_are_all_durable_and_each_all_or_nothing()
    {
        var path = Path.Combine(_dir, "kms.db");
        const int Writers = 64;
        await using (var storage = SqliteStorage.Open(path))
        {
            await Task.WhenAll(Enumerable.Range(0, Writers).Select(w => Task.Run(() => storage.TransactAsync(
            [
                StorageOperation.Put($"tx/{w}/a", BitConverter.GetBytes(w)),
                StorageOperation.Put($"tx/{w}/b", BitConverter.GetBytes(w)),
                StorageOperation.Put($"index/{w}", BitConverter.GetBytes(w)),
            ]))));

            // Acknowledged means committed: visible to the store's readers at once.
            Assert.Equal(Writers, (await storage.ListAsync("index/")).Count);
            Assert.InRange(storage.Commits, 1, Writers);
        }

        await using var reopened = SqliteStorage.Open(path);
        for (var w = 0; w < Writers; w++)
        {
            Assert.Equal(BitConverter.GetBytes(w), await reopened.GetAsync($"tx/{w}/a"));
            Assert.Equal(BitConverter.GetBytes(w), await reopened.GetAsync($"tx/{w}/b"));
            Assert.Equal(BitConverter.GetBytes(w), await reopened.GetAsync($"index/{w}"));
        }
    }

    [Fact]
    public async Task A_failing_transaction_in_a_batch_is_rolled_back_alone()
    {
        var path = Path.Combine(_dir, "kms.db");
        await using (var storage = SqliteStorage.Open(path))
        {
            // One batch, as the committer would hand it over: the middle transaction writes a key, then fails
            // (a null key violates NOT NULL), so its first write must go too while its neighbours commit.
            var outcomes = storage.CommitBatch(
            [
                [StorageOperation.Put("before", "1"u8.ToArray())],
                [StorageOperation.Put("partial", "2"u8.ToArray()), StorageOperation.Put(null!, "x"u8.ToArray())],
                [StorageOperation.Put("after", "3"u8.ToArray()), StorageOperation.Delete("before-never-existed")],
            ]);

            Assert.Null(outcomes[0]);
            Assert.NotNull(outcomes[1]);
            Assert.Null(outcomes[2]);
        }

        await using var reopened = SqliteStorage.Open(path);
        Assert.Equal("1"u8.ToArray(), await reopened.GetAsync("before"));
        Assert.Null(await reopened.GetAsync("partial"));
        Assert.Equal("3"u8.ToArray(), await reopened.GetAsync("after"));
    }

    [Fact]
    public async Task A_failing_transaction_reports_its_own_error_through_transact()
    {
        await using var storage = SqliteStorage.Open(Path.Combine(_dir, "kms.db"));
        var good = Enumerable.Range(0, 16).Select(i => storage.TransactAsync([StorageOperation.Put($"good/{i}", new byte[] { 1 })])).ToList();
        var bad = storage.TransactAsync([StorageOperation.Put("bad/1", new byte[] { 1 }), StorageOperation.Put(null!, new byte[] { 1 })]);
        await Task.WhenAll(good);
        await Assert.ThrowsAnyAsync<Exception>(() => bad);
        Assert.Equal(16, (await storage.ListAsync("good/")).Count);
        Assert.Empty(await storage.ListAsync("bad/"));
    }

    [Fact]
    public async Task Reads_see_the_last_commit_while_the_writer_is_busy()
    {
        var path = Path.Combine(_dir, "kms.db");
        await using var storage = SqliteStorage.Open(path);
        await storage.PutAsync("k", "old"u8.ToArray());

        // Another connection holds the write lock: the store's writer waits for it, its readers do not.
        using var blocker = new SqliteConnection($"Data Source={path};Pooling=False");
        blocker.Open();
        using (var begin = blocker.CreateCommand())
        {
            begin.CommandText = "BEGIN IMMEDIATE; INSERT INTO kms_entries(key, value) VALUES('other', x'00');";
            begin.ExecuteNonQuery();
        }

        var write = storage.PutAsync("k", "new"u8.ToArray());
        Assert.Equal("old"u8.ToArray(), await storage.GetAsync("k"));
        Assert.False(write.IsCompleted);

        using (var commit = blocker.CreateCommand())
        {
            commit.CommandText = "COMMIT";
            commit.ExecuteNonQuery();
        }

        await write.WaitAsync(TimeSpan.FromSeconds(30));
        Assert.Equal("new"u8.ToArray(), await storage.GetAsync("k"));
    }
}
