using Morphisms.Client.Trust;

namespace Morphisms.Client.Tests;

/// <summary>The trust file: written without following planted symlinks, and concurrent saves losing nothing.</summary>
public sealed class KmsTrustStoreTests : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("morph-trust-").FullName;

    private string StorePath => Path.Combine(_dir, "kms-trust.json");

    [Fact]
    public void A_symlink_at_the_old_fixed_temp_name_is_not_followed()
    {
        var victim = Path.Combine(_dir, "victim");
        File.WriteAllText(victim, "precious");
        File.CreateSymbolicLink(StorePath + ".tmp", victim);

        new KmsTrustStore(StorePath).Save(Record("https://kms-a:8200"));

        Assert.Equal("precious", File.ReadAllText(victim));
        Assert.Null(new FileInfo(StorePath).LinkTarget);
        Assert.NotNull(new KmsTrustStore(StorePath).Find("https://kms-a:8200"));
        Assert.Equal(UnixFileMode.UserRead | UnixFileMode.UserWrite, File.GetUnixFileMode(StorePath));
    }

    [Fact]
    public async Task Concurrent_saves_of_different_records_all_survive()
    {
        // Two writers (morph up and morph kms trust, say), each saving its own records as fast as it can: without the
        // lock one read-modify-write overwrites the other's and records vanish.
        const int perWriter = 60;
        using var start = new Barrier(2);
        var writers = Enumerable.Range(0, 2).Select(w => Task.Factory.StartNew(() =>
        {
            var store = new KmsTrustStore(StorePath);
            start.SignalAndWait();
            for (var i = 0; i < perWriter; i++)
            {
                store.Save(Record($"https://kms-{w}-{i}:8200"));
            }
        }, TaskCreationOptions.LongRunning)).ToArray();
        await Task.WhenAll(writers);

        var all = new KmsTrustStore(StorePath).All();
        Assert.Equal(2 * perWriter, all.Count);
        Assert.Empty(Directory.GetFiles(_dir, "*.tmp"));
    }

    [Fact]
    public void Keeping_the_pinned_root_refuses_another_root_for_the_same_kms_and_writes_nothing()
    {
        var store = new KmsTrustStore(StorePath);
        Assert.Null(store.Save(Record("https://kms-a:8200"), keepPinnedRoot: true));
        var before = File.ReadAllText(StorePath);
        var rootB = Record("https://KMS-A:8200/") with { RootCaSha256 = new string('c', 64) };

        var refused = Assert.Throws<KmsRootChangedException>(() => store.Save(rootB, keepPinnedRoot: true));

        Assert.Equal(new string('a', 64), refused.Pinned.RootCaSha256);
        Assert.Equal(new string('c', 64), refused.Presented.RootCaSha256);
        Assert.Contains($"pinned to root CA sha256 {new string('a', 64)}, but the KMS now presents root CA sha256 {new string('c', 64)}", refused.Message);
        Assert.Equal(before, File.ReadAllText(StorePath));

        // The same root (a new measurement, say) is saved; another KMS's record is not compared; without the flag the root is replaced.
        Assert.NotNull(store.Save(Record("https://kms-a:8200") with { Measurement = new string('1', 96) }, keepPinnedRoot: true));
        Assert.Null(store.Save(rootB with { KmsUrl = "https://kms-b:8200" }, keepPinnedRoot: true));
        Assert.Equal(new string('a', 64), store.Save(rootB)!.RootCaSha256);
        Assert.Equal(new string('c', 64), store.Find("https://kms-a:8200")!.RootCaSha256);
    }

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    private static KmsTrustRecord Record(string url) => new()
    {
        KmsUrl = url,
        RootCaPem = "-----BEGIN CERTIFICATE-----\n-----END CERTIFICATE-----\n",
        RootCaSha256 = new string('a', 64),
        TlsSpkiSha256 = new string('b', 64),
        Tee = "simulated",
        Measurement = new string('0', 96),
        Simulated = true,
        VerifiedAt = DateTimeOffset.UnixEpoch,
    };
}
