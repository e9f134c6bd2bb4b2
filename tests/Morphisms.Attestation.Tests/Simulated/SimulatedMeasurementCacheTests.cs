using System.Text.Json.Nodes;
using Morphisms.Attestation.Simulated;

namespace Morphisms.Attestation.Tests.Simulated;

/// <summary>
/// The simulated TEE's record of file digests: it may spare a launch the reading of unchanged files, and must never
/// change a measurement — whatever happened to the files since they were recorded.
/// </summary>
public sealed class SimulatedMeasurementCacheTests : IDisposable
{
    private static readonly byte[] Config = "{\"function\":\"hello\"}"u8.ToArray();
    private readonly string _bundle = Directory.CreateTempSubdirectory("morph-bundle-").FullName;
    private readonly string _state = Directory.CreateTempSubdirectory("morph-sim-state-").FullName;

    public SimulatedMeasurementCacheTests()
    {
        File.WriteAllText(Path.Combine(_bundle, "app.py"), "print('hello')\n");
        Directory.CreateDirectory(Path.Combine(_bundle, "lib"));
        File.WriteAllBytes(Path.Combine(_bundle, "lib", "data.bin"), [1, 2, 3, 4]);
    }

    private string CacheFile => SimulatedMeasurementCache.RecordPath(_state, _bundle);

    public void Dispose()
    {
        Directory.Delete(_bundle, recursive: true);
        Directory.Delete(_state, recursive: true);
    }

    [Fact]
    public void A_recorded_bundle_measures_the_same_from_the_cache_and_it_is_read_from_there()
    {
        var uncached = SimulatedMeasurement.ForSnp(_bundle, Config);
        Record();

        var reopened = SimulatedMeasurementCache.Open(_state, _bundle);
        Assert.Equal(2, reopened.Count);
        Assert.Equal(uncached, SimulatedMeasurement.ForSnp(_bundle, Config, reopened));
        Assert.Equal(SimulatedMeasurement.ForSgx(_bundle, Config), SimulatedMeasurement.ForSgx(_bundle, Config, reopened));

        // Proof that the digests came from the cache: a (tampered) digest for an unchanged file is what is measured.
        // The cache sits beside the simulated TEE's signing keys, so whoever can write it could sign anything anyway.
        RewriteDigests("00");
        Assert.NotEqual(uncached, SimulatedMeasurement.ForSnp(_bundle, Config, SimulatedMeasurementCache.Open(_state, _bundle)));
    }

    [Fact]
    public void Changed_content_is_digested_again_even_with_its_size_and_modification_time_restored()
    {
        // A modification time DateTime can hold exactly, so that restoring it gives back the same nanoseconds.
        var path = Path.Combine(_bundle, "lib", "data.bin");
        var modified = new DateTime(2026, 1, 2, 3, 4, 5, DateTimeKind.Utc);
        File.SetLastWriteTimeUtc(path, modified);
        Record();

        File.WriteAllBytes(path, [1, 2, 3, 5]);
        File.SetLastWriteTimeUtc(path, modified);
        Assert.Equal(4, new FileInfo(path).Length);

        // Same size, same mtime: only the status-change time tells — and the measurement must follow the content.
        Assert.Equal(SimulatedMeasurement.ForSnp(_bundle, Config), SimulatedMeasurement.ForSnp(_bundle, Config, SimulatedMeasurementCache.Open(_state, _bundle)));
    }

    [Fact]
    public void A_file_replaced_at_the_same_path_is_digested_again()
    {
        var path = Path.Combine(_bundle, "app.py");
        Record();
        var replacement = Path.Combine(_bundle, "app.py.new");
        File.WriteAllText(replacement, "print('HELLO')\n");
        File.Move(replacement, path, overwrite: true);

        Assert.Equal(SimulatedMeasurement.ForSnp(_bundle, Config), SimulatedMeasurement.ForSnp(_bundle, Config, SimulatedMeasurementCache.Open(_state, _bundle)));
    }

    [Theory]
    [InlineData("not json")]
    [InlineData("{\"version\":2,\"files\":{}}")]
    [InlineData("{\"version\":1,\"files\":{\"relative/path\":{}}}")]
    [InlineData("{\"version\":1,\"files\":{\"/x\":{\"sha256\":\"zz\",\"device\":-1}}}")]
    [InlineData("[1,2,3]")]
    public void A_cache_file_it_cannot_use_is_ignored(string content)
    {
        Directory.CreateDirectory(Path.GetDirectoryName(CacheFile)!);
        File.WriteAllText(CacheFile, content);

        var cache = SimulatedMeasurementCache.Open(_state, _bundle);

        Assert.Equal(0, cache.Count);
        Assert.Equal(SimulatedMeasurement.ForSnp(_bundle, Config), SimulatedMeasurement.ForSnp(_bundle, Config, cache));
    }

    [Fact]
    public void Saving_drops_entries_of_changed_files_and_leaves_no_temporary_file()
    {
        Record();
        File.Delete(Path.Combine(_bundle, "app.py"));
        var cache = SimulatedMeasurementCache.Open(_state, _bundle);
        SimulatedMeasurement.ForSnp(_bundle, Config, cache);
        File.AppendAllText(Path.Combine(_bundle, "lib", "data.bin"), "x");
        SimulatedMeasurement.ForSnp(_bundle, Config, cache);

        Assert.True(cache.Save());

        var saved = Assert.IsType<JsonObject>(JsonNode.Parse(File.ReadAllText(CacheFile))!["files"]);
        Assert.Equal([Path.Combine(_bundle, "lib", "data.bin")], saved.Select(f => f.Key));
        Assert.Equal([CacheFile], Directory.GetFiles(_state, "*", SearchOption.AllDirectories));
    }

    [Fact]
    public void A_state_directory_it_cannot_write_is_reported_and_changes_nothing()
    {
        // A regular file where the state directory should be: no directory can be made under it, even by root.
        var notADirectory = Path.Combine(_state, "not-a-directory");
        File.WriteAllText(notADirectory, "");
        var cache = SimulatedMeasurementCache.Open(notADirectory, _bundle);
        var measured = SimulatedMeasurement.ForSnp(_bundle, Config, cache);

        Assert.False(cache.Save());
        Assert.Equal(SimulatedMeasurement.ForSnp(_bundle, Config), measured);
        Assert.Equal([notADirectory], Directory.GetFileSystemEntries(_state));
    }

    [Fact]
    public void Each_bundle_has_its_own_record()
    {
        Record();
        var other = Directory.CreateTempSubdirectory("morph-bundle-").FullName;
        try
        {
            File.WriteAllText(Path.Combine(other, "app.py"), "print('other')\n");
            Assert.Equal(0, SimulatedMeasurementCache.Open(_state, other).Count);
            Assert.NotEqual(SimulatedMeasurementCache.RecordPath(_state, _bundle), SimulatedMeasurementCache.RecordPath(_state, other));
        }
        finally
        {
            Directory.Delete(other, recursive: true);
        }
    }

    private void Record()
    {
        var cache = SimulatedMeasurementCache.Open(_state, _bundle);
        SimulatedMeasurement.ForSnp(_bundle, Config, cache);
        Assert.True(cache.Save());
    }

    private void RewriteDigests(string hexByte)
    {
        var document = JsonNode.Parse(File.ReadAllText(CacheFile))!;
        foreach (var (_, entry) in document["files"]!.AsObject())
        {
            entry!["sha256"] = string.Concat(Enumerable.Repeat(hexByte, 32));
        }

        File.WriteAllText(CacheFile, document.ToJsonString());
    }
}
