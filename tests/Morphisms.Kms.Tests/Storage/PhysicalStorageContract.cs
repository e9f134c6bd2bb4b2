using Morphisms.Kms.Storage;

namespace Morphisms.Kms.Tests.Storage;

/// <summary>
/// What every <see cref="IPhysicalStorage"/> must do, run against each implementation (SQLite, in-memory and
/// PostgreSQL below): Vault-style ordinal listing, all-or-nothing transactions, durable writes that a reopened
/// store sees, and consistent full reads.
/// </summary>
public abstract class PhysicalStorageContract
{
    /// <summary>Opens the store named <paramref name="name"/> (the same name reopens the same data where the kind can).</summary>
    protected abstract Task<IPhysicalStorage> OpenAsync(string name);

    /// <summary>Whether reopening a name sees the data written before (false for the in-memory store).</summary>
    protected virtual bool Durable => true;

    [Fact]
    public async Task Put_get_delete_and_list_immediate_children()
    {
        await using var storage = await OpenAsync("a");
        await storage.PutAsync("a/b", "1"u8.ToArray());
        await storage.PutAsync("a/c/d", "2"u8.ToArray());
        await storage.PutAsync("a/c/e", "3"u8.ToArray());
        await storage.PutAsync("a0", "4"u8.ToArray());
        await storage.PutAsync("b", "5"u8.ToArray());
        await storage.PutAsync("b", "6"u8.ToArray());

        Assert.Equal("1"u8.ToArray(), await storage.GetAsync("a/b"));
        Assert.Equal("6"u8.ToArray(), await storage.GetAsync("b"));
        Assert.Null(await storage.GetAsync("a/z"));
        Assert.Equal(["b", "c/"], await storage.ListAsync("a/"));
        Assert.Equal(["a/", "a0", "b"], await storage.ListAsync(""));
        Assert.Empty(await storage.ListAsync("zz/"));

        await storage.DeleteAsync("a/b");
        await storage.DeleteAsync("never-existed");
        Assert.Null(await storage.GetAsync("a/b"));
        Assert.Equal(["c/"], await storage.ListAsync("a/"));
    }

    [Fact]
    public async Task Listing_is_exact_for_prefixes_ending_in_any_character()
    {
        await using var storage = await OpenAsync("b");
        foreach (var key in new[] { "p/x", "p/\u00ff", "p/\uffff", "p/\U0010FFFF", "p0", "p/", "q", "P/upper", "p/\u00e9t\u00e9" })
        {
            await storage.PutAsync(key, new byte[] { 1 });
        }

        // Ordinal UTF-16 order, as the KMS sorts everywhere: a surrogate pair sorts before U+FFFF; no case folding.
        Assert.Equal(["x", "\u00e9t\u00e9", "\u00ff", "\U0010FFFF", "\uffff"], await storage.ListAsync("p/"));
        Assert.Equal(["/", "0"], await storage.ListAsync("p"));
        Assert.Equal(["upper"], await storage.ListAsync("P/"));

        // A prefix ending in the largest code point has no upper bound; the scan must still be exact.
        await storage.PutAsync("m\U0010FFFFa", new byte[] { 1 });
        await storage.PutAsync("n", new byte[] { 1 });
        Assert.Equal(["a"], await storage.ListAsync("m\U0010FFFF"));
    }

    [Fact]
    public async Task A_transaction_applies_all_its_operations_and_survives_reopen()
    {
        await using (var storage = await OpenAsync("c"))
        {
            await storage.TransactAsync([StorageOperation.Put("x", "1"u8.ToArray()), StorageOperation.Put("y", "2"u8.ToArray())]);
            await storage.TransactAsync([StorageOperation.Delete("x"), StorageOperation.Put("z", "3"u8.ToArray()), StorageOperation.Put("y", "4"u8.ToArray())]);
            await storage.TransactAsync([]);
            Assert.Null(await storage.GetAsync("x"));
            Assert.Equal("4"u8.ToArray(), await storage.GetAsync("y"));
        }

        if (!Durable)
        {
            return;
        }

        await using var reopened = await OpenAsync("c");
        Assert.Null(await reopened.GetAsync("x"));
        Assert.Equal("4"u8.ToArray(), await reopened.GetAsync("y"));
        Assert.Equal("3"u8.ToArray(), await reopened.GetAsync("z"));
    }

    [Fact]
    public async Task Read_all_returns_every_entry_in_ordinal_order()
    {
        await using var storage = await OpenAsync("d");
        var keys = new[] { "b/2", "a", "b/1", "\u00ff", "B", "a/\U0010FFFF", "a/\uffff" };
        foreach (var (key, i) in keys.Select((k, i) => (k, i)))
        {
            await storage.PutAsync(key, new[] { (byte)i, (byte)0, (byte)255 });
        }

        var all = await storage.ReadAllAsync();
        Assert.Equal(keys.Order(StringComparer.Ordinal), all.Select(e => e.Key));
        Assert.Equal(new byte[] { 0, 0, 255 }, all.Single(e => e.Key == "b/2").Value);
    }

    [Fact]
    public async Task Concurrent_writers_lose_nothing()
    {
        await using var storage = await OpenAsync("e");
        await Task.WhenAll(Enumerable.Range(0, 8).Select(w => Task.Run(async () =>
        {
            for (var i = 0; i < 20; i++)
            {
                await storage.TransactAsync([StorageOperation.Put($"w{w}/k{i}", BitConverter.GetBytes(i)), StorageOperation.Put($"last/{w}", BitConverter.GetBytes(i))]);
            }
        })));

        for (var w = 0; w < 8; w++)
        {
            Assert.Equal(20, (await storage.ListAsync($"w{w}/")).Count);
            Assert.Equal(BitConverter.GetBytes(19), await storage.GetAsync($"last/{w}"));
        }
    }
}

/// <summary>The contract against SQLite.</summary>
public sealed class SqliteStorageContractTests : PhysicalStorageContract, IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("kms-sqlite-contract-").FullName;

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    protected override Task<IPhysicalStorage> OpenAsync(string name) =>
        Task.FromResult<IPhysicalStorage>(SqliteStorage.Open(Path.Combine(_dir, name + ".db")));
}

/// <summary>The contract against the in-memory store.</summary>
public sealed class InMemoryStorageContractTests : PhysicalStorageContract
{
    protected override bool Durable => false;

    protected override Task<IPhysicalStorage> OpenAsync(string name) => Task.FromResult<IPhysicalStorage>(new InMemoryStorage());
}

/// <summary>The contract against PostgreSQL (a real server; one database per store name and test instance).</summary>
public sealed class PostgresStorageContractTests(PostgresFixture postgres) : PhysicalStorageContract, IClassFixture<PostgresFixture>
{
    private readonly Dictionary<string, string> _databases = [];

    protected override async Task<IPhysicalStorage> OpenAsync(string name)
    {
        if (!_databases.TryGetValue(name, out var connectionString))
        {
            connectionString = await postgres.Server.CreateDatabaseAsync();
            _databases[name] = connectionString;
        }

        return PostgresStorage.Open(connectionString);
    }
}
