namespace Morphisms.Cli.Tests;

[Collection(Kms.MorphismsHomeCollection.Name)]
public class EvidenceDemoCommandTests
{
    [Fact]
    public async Task Demo_attests_with_the_simulated_tee_and_every_expectation_holds()
    {
        var home = Directory.CreateTempSubdirectory("morph-home-").FullName;
        var previous = Environment.GetEnvironmentVariable("MORPHISMS_HOME");
        Environment.SetEnvironmentVariable("MORPHISMS_HOME", home);
        try
        {
            var outcome = await MorphRunner.RunAsync("evidence", "demo");
            Assert.Equal(ExitCodes.Ok, outcome.ExitCode);
            Assert.Contains("simulated SNP report, simulated root trusted: accepted (warning) [simulated]", outcome.Stdout);
            Assert.Contains("same SNP report, vendor roots only: refused", outcome.Stdout);
            Assert.Contains("expectations held", outcome.Stdout);
            Assert.DoesNotContain("FAIL", outcome.Stdout);
            Assert.True(File.Exists(Path.Combine(home, "data", "simulated-tee", "simulated-tee.json")));
        }
        finally
        {
            Environment.SetEnvironmentVariable("MORPHISMS_HOME", previous);
            Directory.Delete(home, recursive: true);
        }
    }

    [Fact]
    public async Task Demo_with_a_corrupt_simulated_tee_names_it_and_leaves_it()
    {
        var home = Directory.CreateTempSubdirectory("morph-home-").FullName;
        var previous = Environment.GetEnvironmentVariable("MORPHISMS_HOME");
        Environment.SetEnvironmentVariable("MORPHISMS_HOME", home);
        try
        {
            var teeFile = Path.Combine(home, "data", "simulated-tee", "simulated-tee.json");
            Directory.CreateDirectory(Path.GetDirectoryName(teeFile)!);
            await File.WriteAllTextAsync(teeFile, "{not json");
            var outcome = await MorphRunner.RunAsync("evidence", "demo");
            Assert.Equal(ExitCodes.UsageOrInput, outcome.ExitCode);
            Assert.Contains($"morph: the installation's simulated TEE cannot be loaded: {teeFile}: not a simulated TEE's state file", outcome.Stderr);
            ErrorPathTests.AssertNoStackTrace(outcome);
            Assert.Equal("{not json", await File.ReadAllTextAsync(teeFile));
        }
        finally
        {
            Environment.SetEnvironmentVariable("MORPHISMS_HOME", previous);
            Directory.Delete(home, recursive: true);
        }
    }
}
