using Morphisms.Kms.Storage;

namespace Morphisms.Kms.Tests.Storage;

/// <summary>What is particular to SQLite and to the storage specification; the behaviour every store shares is in <see cref="PhysicalStorageContract"/>.</summary>
public sealed class SqliteStorageTests : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("kms-sqlite-").FullName;

    [Fact]
    public async Task The_database_file_is_private_to_the_kms_user()
    {
        var path = Path.Combine(_dir, "kms.db");
        await using (var storage = SqliteStorage.Open(path))
        {
            await storage.PutAsync("x", "1"u8.ToArray());
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
}
