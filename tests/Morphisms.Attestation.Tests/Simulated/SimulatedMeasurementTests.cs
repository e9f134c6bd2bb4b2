using System.Buffers.Binary;
using System.Security.Cryptography;
using System.Text;
using Morphisms.Attestation.Simulated;

namespace Morphisms.Attestation.Tests.Simulated;

public sealed class SimulatedMeasurementTests : IDisposable
{
    private readonly string _bundle = Directory.CreateTempSubdirectory("morph-bundle-").FullName;

    public SimulatedMeasurementTests()
    {
        File.WriteAllText(Path.Combine(_bundle, "app.py"), "print('hello')\n");
        Directory.CreateDirectory(Path.Combine(_bundle, "lib"));
        File.WriteAllBytes(Path.Combine(_bundle, "lib", "data.bin"), [1, 2, 3, 4]);
    }

    public void Dispose() => Directory.Delete(_bundle, recursive: true);

    [Fact]
    public void Measurement_is_deterministic_and_sized_for_each_format()
    {
        var config = "{\"function\":\"hello\"}"u8.ToArray();
        Assert.Equal(48, SimulatedMeasurement.ForSnp(_bundle, config).Length);
        Assert.Equal(32, SimulatedMeasurement.ForSgx(_bundle, config).Length);
        Assert.Equal(SimulatedMeasurement.ForSnp(_bundle, config), SimulatedMeasurement.ForSnp(_bundle, config));
    }

    [Fact]
    public void Changing_one_byte_of_the_function_changes_the_measurement()
    {
        var config = "{}"u8.ToArray();
        var before = SimulatedMeasurement.ForSnp(_bundle, config);
        var path = Path.Combine(_bundle, "lib", "data.bin");
        File.WriteAllBytes(path, [1, 2, 3, 5]);
        Assert.NotEqual(before, SimulatedMeasurement.ForSnp(_bundle, config));
    }

    [Fact]
    public void Changing_the_launch_config_or_a_file_name_changes_the_measurement()
    {
        var before = SimulatedMeasurement.ForSgx(_bundle, "{}"u8);
        Assert.NotEqual(before, SimulatedMeasurement.ForSgx(_bundle, "{ }"u8));
        File.Move(Path.Combine(_bundle, "app.py"), Path.Combine(_bundle, "app2.py"));
        Assert.NotEqual(before, SimulatedMeasurement.ForSgx(_bundle, "{}"u8));
    }

    [Fact]
    public void Making_a_file_executable_changes_the_measurement()
    {
        var before = SimulatedMeasurement.ForSnp(_bundle, "{}"u8);
        var path = Path.Combine(_bundle, "app.py");
        File.SetUnixFileMode(path, File.GetUnixFileMode(path) | UnixFileMode.UserExecute);
        Assert.NotEqual(before, SimulatedMeasurement.ForSnp(_bundle, "{}"u8));
    }

    [Fact]
    public void The_encoding_is_pinned_so_registered_reference_values_stay_valid()
    {
        // A file several read buffers long, so that streaming it must give what hashing it whole gave.
        var big = new byte[300_001];
        new Random(7).NextBytes(big);
        File.WriteAllBytes(Path.Combine(_bundle, "lib", "big.bin"), big);
        var config = "{\"function\":\"hello\"}"u8.ToArray();

        var files = new[]
        {
            ("app.py", Encoding.UTF8.GetBytes("print('hello')\n")),
            ("lib/big.bin", big),
            ("lib/data.bin", new byte[] { 1, 2, 3, 4 }),
        };

        Assert.Equal(Expected(HashAlgorithmName.SHA384), SimulatedMeasurement.ForSnp(_bundle, config));
        Assert.Equal(Expected(HashAlgorithmName.SHA256), SimulatedMeasurement.ForSgx(_bundle, config));

        byte[] Expected(HashAlgorithmName algorithm)
        {
            using var expected = IncrementalHash.CreateHash(algorithm);
            expected.AppendData("morphisms/sim-measurement/v2\0"u8);
            foreach (var (name, content) in files)
            {
                Length(expected, name.Length);
                expected.AppendData(Encoding.UTF8.GetBytes(name));
                expected.AppendData([0]);
                Length(expected, content.Length);
                expected.AppendData(SHA256.HashData(content));
            }

            expected.AppendData("\0launch-config\0"u8);
            Length(expected, config.Length);
            expected.AppendData(config);
            return expected.GetHashAndReset();
        }

        static void Length(IncrementalHash hash, long value)
        {
            Span<byte> bytes = stackalloc byte[8];
            BinaryPrimitives.WriteInt64BigEndian(bytes, value);
            hash.AppendData(bytes);
        }
    }

    [Fact]
    public void An_unreadable_file_fails_with_its_own_error_not_a_wrapper()
    {
        // Files are digested in parallel; the caller must still see which file failed and why.
        File.CreateSymbolicLink(Path.Combine(_bundle, "lib", "gone.so"), Path.Combine(_bundle, "missing-target"));
        var error = Assert.Throws<FileNotFoundException>(() => SimulatedMeasurement.ForSnp(_bundle, "{}"u8));
        Assert.Contains("gone.so", error.Message);
    }

    [Fact]
    public async Task A_directory_link_loop_planted_after_the_links_were_checked_fails_fast_naming_it()
    {
        // Two links back to the root: listed naively, every path through them is a new one, and measuring never ends
        // (the serving host measures under its change lock). The spec loader refuses this, but only when it loads.
        Directory.CreateDirectory(Path.Combine(_bundle, "a"));
        Directory.CreateSymbolicLink(Path.Combine(_bundle, "a", "x"), "..");
        Directory.CreateSymbolicLink(Path.Combine(_bundle, "a", "y"), "..");

        var error = await Assert.ThrowsAsync<IOException>(
            () => Task.Run(() => SimulatedMeasurement.ForSnp(_bundle, "{}"u8)).WaitAsync(TimeSpan.FromSeconds(30)));
        Assert.Contains(Path.Combine(_bundle, "a", "x"), error.Message);
        Assert.Contains("leads back to", error.Message);
    }

    [Fact]
    public async Task A_loop_through_two_directory_links_fails_fast()
    {
        Directory.CreateDirectory(Path.Combine(_bundle, "b"));
        Directory.CreateSymbolicLink(Path.Combine(_bundle, "lib", "to-b"), "../b");
        Directory.CreateSymbolicLink(Path.Combine(_bundle, "b", "to-lib"), "../lib");

        var error = await Assert.ThrowsAsync<IOException>(
            () => Task.Run(() => SimulatedMeasurement.ForSgx(_bundle, "{}"u8)).WaitAsync(TimeSpan.FromSeconds(30)));
        Assert.Contains("leads back to", error.Message);
    }

    [Fact]
    public void Links_to_one_directory_without_a_loop_and_a_deep_tree_measure_as_before()
    {
        // Two links to lib (no loop) are listed through both, and a tree deeper than any bundle is listed whole.
        Directory.CreateSymbolicLink(Path.Combine(_bundle, "lib-a"), "lib");
        Directory.CreateSymbolicLink(Path.Combine(_bundle, "lib-b"), Path.Combine(_bundle, "lib"));
        var deep = _bundle;
        for (var i = 0; i < 100; i++)
        {
            deep = Directory.CreateDirectory(Path.Combine(deep, "d")).FullName;
        }

        File.WriteAllText(Path.Combine(deep, "leaf.txt"), "deep");
        Directory.CreateSymbolicLink(Path.Combine(deep, "up-to-lib"), Path.Combine(_bundle, "lib"));

        var config = "{}"u8.ToArray();
        Assert.Equal(Listed(HashAlgorithmName.SHA384, config), SimulatedMeasurement.ForSnp(_bundle, config));
        Assert.Equal(Listed(HashAlgorithmName.SHA256, config), SimulatedMeasurement.ForSgx(_bundle, config));
        // app.py, data.bin through lib, lib-a, lib-b and the deepest link, leaf.txt; the deepest link is 101 directories down.
        Assert.Equal(6, SimulatedMeasurement.BundlePaths(_bundle, 101, 1000).Count());
    }

    [Fact]
    public void A_tree_past_the_depth_or_entry_bound_is_refused_naming_the_bound()
    {
        var deep = _bundle;
        for (var i = 0; i < 5; i++)
        {
            deep = Directory.CreateDirectory(Path.Combine(deep, "d")).FullName;
        }

        // app.py and lib/data.bin; lib and five nested directories, the deepest five down: eight entries.
        Assert.Equal(2, SimulatedMeasurement.BundlePaths(_bundle, 5, 8).Count());
        var tooDeep = Assert.Throws<IOException>(() => SimulatedMeasurement.BundlePaths(_bundle, 4, 1000).Count());
        Assert.Contains("more than 4 directories deep", tooDeep.Message);
        var tooMany = Assert.Throws<IOException>(() => SimulatedMeasurement.BundlePaths(_bundle, 5, 7).Count());
        Assert.Contains("more than 7 files and directories", tooMany.Message);
    }

    /// <summary>The measurement as it was before the walk refused loops: Directory.EnumerateFiles and the pinned encoding.</summary>
    private byte[] Listed(HashAlgorithmName algorithm, byte[] config)
    {
        using var expected = IncrementalHash.CreateHash(algorithm);
        expected.AppendData("morphisms/sim-measurement/v2\0"u8);
        foreach (var file in Directory.EnumerateFiles(_bundle, "*", SearchOption.AllDirectories)
            .Select(f => (Full: f, Name: Path.GetRelativePath(_bundle, f)))
            .OrderBy(f => f.Name, StringComparer.Ordinal))
        {
            var content = File.ReadAllBytes(file.Full);
            AppendLength(expected, Encoding.UTF8.GetByteCount(file.Name));
            expected.AppendData(Encoding.UTF8.GetBytes(file.Name));
            expected.AppendData([(File.GetUnixFileMode(file.Full) & UnixFileMode.UserExecute) != 0 ? (byte)1 : (byte)0]);
            AppendLength(expected, content.Length);
            expected.AppendData(SHA256.HashData(content));
        }

        expected.AppendData("\0launch-config\0"u8);
        AppendLength(expected, config.Length);
        expected.AppendData(config);
        return expected.GetHashAndReset();

        static void AppendLength(IncrementalHash hash, long value)
        {
            Span<byte> bytes = stackalloc byte[8];
            BinaryPrimitives.WriteInt64BigEndian(bytes, value);
            hash.AppendData(bytes);
        }
    }

    [Fact]
    public void Missing_bundle_is_a_clear_error()
    {
        var error = Assert.Throws<DirectoryNotFoundException>(() => SimulatedMeasurement.ForSnp(Path.Combine(_bundle, "nope"), "{}"u8));
        Assert.Contains("bundle", error.Message);
    }
}
