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
    public void Missing_bundle_is_a_clear_error()
    {
        var error = Assert.Throws<DirectoryNotFoundException>(() => SimulatedMeasurement.ForSnp(Path.Combine(_bundle, "nope"), "{}"u8));
        Assert.Contains("bundle", error.Message);
    }
}
