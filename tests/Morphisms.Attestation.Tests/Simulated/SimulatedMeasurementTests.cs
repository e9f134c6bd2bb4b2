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
    public void Missing_bundle_is_a_clear_error()
    {
        var error = Assert.Throws<DirectoryNotFoundException>(() => SimulatedMeasurement.ForSnp(Path.Combine(_bundle, "nope"), "{}"u8));
        Assert.Contains("bundle", error.Message);
    }
}
