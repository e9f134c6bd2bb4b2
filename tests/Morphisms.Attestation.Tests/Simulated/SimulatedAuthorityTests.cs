using Morphisms.Attestation.Simulated;

namespace Morphisms.Attestation.Tests.Simulated;

public sealed class SimulatedAuthorityTests
{
    [Fact]
    public void LoadOrCreate_persists_one_root_per_installation_with_private_permissions()
    {
        var dir = Directory.CreateTempSubdirectory("morph-sim-").FullName;
        try
        {
            string fingerprint;
            using (var first = SimulatedTeeAuthority.LoadOrCreate(dir, TimeProvider.System))
            {
                fingerprint = first.Fingerprint;
            }

            using var second = SimulatedTeeAuthority.LoadOrCreate(dir, TimeProvider.System);
            Assert.Equal(fingerprint, second.Fingerprint);
            var file = Assert.Single(Directory.GetFiles(dir));
            Assert.Equal(UnixFileMode.UserRead | UnixFileMode.UserWrite, File.GetUnixFileMode(file));
        }
        finally
        {
            Directory.Delete(dir, recursive: true);
        }
    }

    [Fact]
    public void Two_installations_have_different_roots()
    {
        using var a = SimulatedTeeAuthority.Create(TimeProvider.System);
        using var b = SimulatedTeeAuthority.Create(TimeProvider.System);
        Assert.NotEqual(a.Fingerprint, b.Fingerprint);
        Assert.True(a.AmdRoots.Simulated);
        Assert.True(a.IntelRoot.Simulated);
    }
}

public sealed class SimulatedAuthorityLoadTests
{
    [Fact]
    public void Load_never_creates_a_simulated_tee()
    {
        var dir = Directory.CreateTempSubdirectory("morph-sim-empty-").FullName;
        try
        {
            Assert.False(SimulatedTeeAuthority.Exists(dir));
            var error = Assert.Throws<FileNotFoundException>(() => SimulatedTeeAuthority.Load(dir));
            Assert.Contains("no simulated TEE", error.Message);
            Assert.Empty(Directory.GetFiles(dir));
        }
        finally
        {
            Directory.Delete(dir, recursive: true);
        }
    }

    [Theory]
    [InlineData("{not json")]
    [InlineData("{}")]
    public void Load_of_a_corrupt_state_file_names_it(string content)
    {
        var dir = Directory.CreateTempSubdirectory("morph-sim-corrupt-").FullName;
        try
        {
            var file = Path.Combine(dir, SimulatedTeeAuthority.StateFileName);
            File.WriteAllText(file, content);
            var error = Assert.Throws<InvalidDataException>(() => SimulatedTeeAuthority.Load(dir));
            Assert.StartsWith($"{file}: not a simulated TEE's state file", error.Message);
        }
        finally
        {
            Directory.Delete(dir, recursive: true);
        }
    }
}
