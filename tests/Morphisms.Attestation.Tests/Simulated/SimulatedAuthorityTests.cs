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
    public void Concurrent_LoadOrCreate_on_a_fresh_directory_all_end_with_the_root_on_disk()
    {
        // `morph up` beside `morph kms server --dev` on a fresh install: every process must end with the one root the
        // file holds, or the KMS trusts one root while instances sign under another. The creators race over two
        // roots generated beforehand (RSA key generation is slow), so a creator keeping its own shows.
        const int Creators = 6;
        var seeds = Enumerable.Range(0, 2).Select(_ => Directory.CreateTempSubdirectory("morph-sim-seed-").FullName).ToArray();
        var dirs = new List<string>(seeds);
        try
        {
            Parallel.ForEach(seeds, seed => SimulatedTeeAuthority.LoadOrCreate(seed, TimeProvider.System).Dispose());
            for (var round = 0; round < 20; round++)
            {
                var parent = Directory.CreateTempSubdirectory("morph-sim-race-").FullName;
                dirs.Add(parent);
                var dir = Path.Combine(parent, "state");
                using var start = new Barrier(Creators);
                var fingerprints = new string[Creators];
                Parallel.For(0, Creators, new ParallelOptions { MaxDegreeOfParallelism = Creators }, i =>
                {
                    var generated = SimulatedTeeAuthority.Load(seeds[i % seeds.Length]);
                    start.SignalAndWait();
                    using var authority = SimulatedTeeAuthority.LoadOrCreate(dir, () => generated);
                    fingerprints[i] = authority.Fingerprint;
                });

                using var onDisk = SimulatedTeeAuthority.Load(dir);
                Assert.All(fingerprints, f => Assert.Equal(onDisk.Fingerprint, f));
                var file = Assert.Single(Directory.GetFiles(dir));
                Assert.Equal(UnixFileMode.UserRead | UnixFileMode.UserWrite, File.GetUnixFileMode(file));
            }
        }
        finally
        {
            dirs.ForEach(d => Directory.Delete(d, recursive: true));
        }
    }

    [Fact]
    public void LoadOrCreate_does_not_follow_a_symlink_planted_at_the_old_temporary_name()
    {
        var dir = Directory.CreateTempSubdirectory("morph-sim-link-").FullName;
        try
        {
            var victim = Path.Combine(dir, "victim");
            File.WriteAllText(victim, "the victim's");
            var planted = Path.Combine(dir, SimulatedTeeAuthority.StateFileName + ".tmp");
            File.CreateSymbolicLink(planted, victim);

            using var authority = SimulatedTeeAuthority.LoadOrCreate(dir, TimeProvider.System);

            Assert.Equal("the victim's", File.ReadAllText(victim));
            Assert.Equal(victim, new FileInfo(planted).LinkTarget);
            var state = Path.Combine(dir, SimulatedTeeAuthority.StateFileName);
            Assert.Null(new FileInfo(state).LinkTarget);
            Assert.Equal(UnixFileMode.UserRead | UnixFileMode.UserWrite, File.GetUnixFileMode(state));
            using var loaded = SimulatedTeeAuthority.Load(dir);
            Assert.Equal(authority.Fingerprint, loaded.Fingerprint);
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
