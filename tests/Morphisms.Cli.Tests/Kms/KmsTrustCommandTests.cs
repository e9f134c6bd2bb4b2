using System.Text.Json;
using Morphisms.Attestation.Simulated;
using Morphisms.Kms;

namespace Morphisms.Cli.Tests.Kms;

/// <summary><c>morph kms trust</c> against a dev KMS on TLS whose self-attestation uses a simulated TEE.</summary>
[Collection(MorphismsHomeCollection.Name)]
public sealed class KmsTrustCommandTests
{
    [Fact]
    public Task Trust_verifies_the_kms_and_pins_its_root_ca_only_when_the_simulated_root_is_trusted() =>
        WithHomeAndKmsAsync(async (home, kms) =>
        {
            var url = kms.BaseAddress!.ToString();
            var trustFile = Path.Combine(home, "config", "kms-trust.json");

            var refused = await MorphRunner.RunAsync("kms", "trust", url);
            Assert.Equal(ExitCodes.Rejected, refused.ExitCode);
            Assert.Contains("NOT trusted", refused.Stderr);
            Assert.Contains("snp.chain", refused.Stderr);
            Assert.False(File.Exists(trustFile));

            var wrongMeasurement = await MorphRunner.RunAsync("kms", "trust", url, "--dev", "--expect-measurement", new string('1', 96));
            Assert.Equal(ExitCodes.Rejected, wrongMeasurement.ExitCode);
            Assert.False(File.Exists(trustFile));

            var trusted = await MorphRunner.RunAsync("kms", "trust", url, "--dev", "--expect-measurement", new string('0', 96), "--json");
            Assert.Equal(ExitCodes.Ok, trusted.ExitCode);
            Assert.Contains("simulated TEE", trusted.Stderr);
            var record = JsonDocument.Parse(trusted.Stdout).RootElement;
            Assert.True(record.GetProperty("simulated").GetBoolean());
            Assert.True(File.Exists(trustFile));
            Assert.Contains(record.GetProperty("root_ca_sha256").GetString()!, await File.ReadAllTextAsync(trustFile));
        });

    /// <summary>A trust store that cannot be read: <c>morph kms trust</c> names it and pins nothing, without a stack trace.</summary>
    [Fact]
    public Task A_corrupt_trust_file_is_named_and_left_alone() =>
        WithHomeAndKmsAsync(async (home, kms) =>
        {
            var trustFile = Path.Combine(home, "config", "kms-trust.json");
            Directory.CreateDirectory(Path.GetDirectoryName(trustFile)!);
            await File.WriteAllTextAsync(trustFile, "{\"half-written");

            var outcome = await MorphRunner.RunAsync("kms", "trust", kms.BaseAddress!.ToString(), "--dev");

            Assert.Equal(ExitCodes.UsageOrInput, outcome.ExitCode);
            Assert.Contains($"NOT pinned: {trustFile}: not a Morphisms trust store", outcome.Stderr);
            ErrorPathTests.AssertNoStackTrace(outcome);
            Assert.Equal("{\"half-written", await File.ReadAllTextAsync(trustFile));
        });

    /// <summary>
    /// Runs <paramref name="test"/> with MORPHISMS_HOME pointing at a fresh directory and a dev KMS on TLS whose
    /// self-attestation is the installation's simulated TEE (launch measurement all zeros).
    /// </summary>
    private static async Task WithHomeAndKmsAsync(Func<string, KmsServer, Task> test)
    {
        var home = Directory.CreateTempSubdirectory("morph-home-").FullName;
        var previous = Environment.GetEnvironmentVariable("MORPHISMS_HOME");
        Environment.SetEnvironmentVariable("MORPHISMS_HOME", home);
        try
        {
            using var tee = SimulatedTeeAuthority.LoadOrCreate(Path.Combine(home, "data", "simulated-tee"), TimeProvider.System);
            await using var kms = new KmsServer(new KmsServerOptions
            {
                Listen = "127.0.0.1:0",
                Storage = "inmem",
                Dev = true,
                Tls = KmsTlsOptions.SelfSigned,
                WarningWriter = TextWriter.Null,
                Attestation = new KmsAttestationOptions { SimulatedTee = tee, TrustSimulatedTee = true, SimulatedMeasurement = new byte[48] },
            });
            await kms.StartAsync();
            await test(home, kms);
        }
        finally
        {
            Environment.SetEnvironmentVariable("MORPHISMS_HOME", previous);
            Directory.Delete(home, recursive: true);
        }
    }
}

/// <summary>Tests that set MORPHISMS_HOME (process-wide) run one at a time.</summary>
[CollectionDefinition(Name, DisableParallelization = true)]
public sealed class MorphismsHomeCollection
{
    public const string Name = "MORPHISMS_HOME";
}
