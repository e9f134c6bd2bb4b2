using Morphisms.Kms.Storage;

namespace Morphisms.Kms.Tests.Storage;

public sealed class SqliteStorageTests : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("kms-sqlite-").FullName;

    public static TheoryData<string> Kinds => ["sqlite", "inmem"];

    [Theory]
    [MemberData(nameof(Kinds))]
    public async Task Put_get_delete_and_list_immediate_children(string kind)
    {
        await using var storage = Open(kind);
        await storage.PutAsync("a/b", "1"u8.ToArray());
        await storage.PutAsync("a/c/d", "2"u8.ToArray());
        await storage.PutAsync("a/c/e", "3"u8.ToArray());
        await storage.PutAsync("a0", "4"u8.ToArray());
        await storage.PutAsync("b", "5"u8.ToArray());

        Assert.Equal("1"u8.ToArray(), await storage.GetAsync("a/b"));
        Assert.Null(await storage.GetAsync("a/z"));
        Assert.Equal(["b", "c/"], await storage.ListAsync("a/"));
        Assert.Equal(["a/", "a0", "b"], await storage.ListAsync(""));
        Assert.Empty(await storage.ListAsync("zz/"));

        await storage.DeleteAsync("a/b");
        await storage.DeleteAsync("never-existed");
        Assert.Null(await storage.GetAsync("a/b"));
        Assert.Equal(["c/"], await storage.ListAsync("a/"));
    }

    [Theory]
    [MemberData(nameof(Kinds))]
    public async Task Listing_is_exact_for_prefixes_ending_in_any_character(string kind)
    {
        await using var storage = Open(kind);
        foreach (var key in new[] { "p/x", "p/\u00ff", "p/\uffff", "p/\U0010FFFF", "p0", "p/", "q" })
        {
            await storage.PutAsync(key, new byte[] { 1 });
        }

        // Ordinal UTF-16 order, as the KMS sorts everywhere: a surrogate pair sorts before U+FFFF.
        Assert.Equal(["x", "\u00ff", "\U0010FFFF", "\uffff"], await storage.ListAsync("p/"));
        Assert.Equal(["/", "0"], await storage.ListAsync("p"));

        // A prefix ending in the largest code point has no upper bound; the scan must still be exact.
        await storage.PutAsync("m\U0010FFFFa", new byte[] { 1 });
        await storage.PutAsync("n", new byte[] { 1 });
        Assert.Equal(["a"], await storage.ListAsync("m\U0010FFFF"));
    }

    [Fact]
    public async Task A_transaction_applies_all_or_nothing_and_survives_reopen()
    {
        var path = Path.Combine(_dir, "kms.db");
        await using (var storage = SqliteStorage.Open(path))
        {
            await storage.TransactAsync([StorageOperation.Put("x", "1"u8.ToArray()), StorageOperation.Put("y", "2"u8.ToArray())]);
            await storage.TransactAsync([StorageOperation.Delete("x"), StorageOperation.Put("z", "3"u8.ToArray())]);
        }

        await using (var reopened = SqliteStorage.Open(path))
        {
            Assert.Null(await reopened.GetAsync("x"));
            Assert.Equal("2"u8.ToArray(), await reopened.GetAsync("y"));
            Assert.Equal("3"u8.ToArray(), await reopened.GetAsync("z"));
        }

        Assert.Equal(UnixFileMode.UserRead | UnixFileMode.UserWrite, File.GetUnixFileMode(path));
    }

    [Fact]
    public void Storage_specs_are_parsed_strictly()
    {
        Assert.Throws<ArgumentException>(() => StorageSpec.Open("postgres:x"));
        Assert.Throws<ArgumentException>(() => StorageSpec.Open("sqlite:"));
        Assert.IsType<InMemoryStorage>(StorageSpec.Open("inmem"));
    }

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    private IPhysicalStorage Open(string kind) =>
        kind == "sqlite" ? SqliteStorage.Open(Path.Combine(_dir, Guid.NewGuid() + ".db")) : new InMemoryStorage();
}
