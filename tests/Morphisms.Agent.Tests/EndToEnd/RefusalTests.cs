using System.Diagnostics;
using System.Security.Cryptography;

namespace Morphisms.Agent.Tests.EndToEnd;

/// <summary>Every refusal ends the agent non-zero with a clear reason, and the app never starts.</summary>
public sealed class RefusalTests
{
    [Fact]
    public async Task WrongKmsPin_IsRefused_AppNeverStarts()
    {
        using var harness = new AgentHarness("pinned");
        await using var kms = await AgentKms.StartAsync(harness.SimDir);
        await kms.RegisterAsync("pinned", harness.Measurement);
        var log = new LogSink();
        var code = await new Agent(harness.Options(kms.Server.BaseAddress!, RandomNumberGenerator.GetBytes(32), log), harness.LaunchConfig).RunAsync(default);

        Assert.Equal(AgentExitCodes.KmsUnavailable, code);
        Assert.Contains("pinned SHA-256", log.Text);
        Assert.False(File.Exists(harness.Marker));
    }

    [Theory]
    [InlineData(AppStart.AfterSecrets)]
    [InlineData(AppStart.Early)]
    public async Task UnderGramine_ATcpAppPort_IsAUsageError_NothingStartsOrReachesTheKms(AppStart start)
    {
        // Gramine has no network stack: loopback TCP to the app would be the host kernel's, carrying every decrypted
        // request past the enclave. Only a UNIX domain socket (encrypted between Gramine processes) is accepted.
        using var harness = new AgentHarness("enclaved");
        using var device = new Evidence.FakeDeviceTree();
        device.Write("attestation_type", "dcap\n");
        var log = new LogSink();
        var options = harness.Options(new Uri("https://127.0.0.1:9/"), RandomNumberGenerator.GetBytes(32), log) with
        {
            Tee = "gramine",
            Devices = new DeviceRoots { Gramine = device.Root },
            AppStart = start,
        };
        var code = await new Agent(options, harness.LaunchConfig).RunAsync(default).WaitAsync(TimeSpan.FromSeconds(30));

        Assert.Equal(AgentExitCodes.Usage, code);
        Assert.Contains("under Gramine the app cannot be served on TCP port", log.Text);
        Assert.Contains("--app-socket", log.Text);
        Assert.DoesNotContain("attesting", log.Text);
        Assert.False(File.Exists(harness.Marker));
    }

    [Fact]
    public async Task UnregisteredMeasurement_IsRefused_AppNeverStarts()
    {
        using var harness = new AgentHarness("changed");
        await using var kms = await AgentKms.StartAsync(harness.SimDir);

        // The KMS knows another build of the function: one byte differs, so the measurement does not match.
        await kms.RegisterAsync("changed", SHA384.HashData("some other build"u8));
        await kms.PutBundleAsync("changed", new() { ["files"] = new System.Text.Json.Nodes.JsonObject { ["greeting"] = "never" } });
        var log = new LogSink();
        var code = await new Agent(harness.Options(kms.Server.BaseAddress!, kms.Pin, log), harness.LaunchConfig).RunAsync(default);

        Assert.Equal(AgentExitCodes.AttestationRefused, code);
        Assert.Contains("refused attestation", log.Text);
        Assert.False(File.Exists(harness.Marker));
        Assert.False(Directory.Exists(harness.SecretsDir));
    }

    [Fact]
    public async Task AnUnregisteredFunction_IsRefusedAtTheChallenge_ExitsThree()
    {
        // The KMS answers the challenge for a function it does not know with 404: a verdict, not an internal error.
        using var harness = new AgentHarness("stranger");
        await using var kms = await AgentKms.StartAsync(harness.SimDir);
        var log = new LogSink();
        var code = await new Agent(harness.Options(kms.Server.BaseAddress!, kms.Pin, log), harness.LaunchConfig).RunAsync(default).WaitAsync(TimeSpan.FromSeconds(60));

        Assert.Equal(AgentExitCodes.AttestationRefused, code);
        Assert.Contains("function stranger is not registered", log.Text);
        Assert.DoesNotContain("internal error", log.Text);
        Assert.False(File.Exists(harness.Marker));
    }

    [Fact]
    public async Task AnAppThatNeverGetsReady_ExitsSeven_AndItsSecretsAreWiped()
    {
        using var harness = new AgentHarness("quitter");
        await using var kms = await AgentKms.StartAsync(harness.SimDir);
        await kms.RegisterAsync("quitter", harness.Measurement);
        await kms.PutBundleAsync("quitter", new() { ["files"] = new System.Text.Json.Nodes.JsonObject { ["greeting"] = "provisioned" } });
        var log = new LogSink();

        // Provisioned, then the app exits at once: the cold start fails after the secrets were written.
        var options = harness.Options(kms.Server.BaseAddress!, kms.Pin, log) with { App = ["/bin/sh", "-c", "exit 1"] };
        var code = await new Agent(options, harness.LaunchConfig).RunAsync(default).WaitAsync(TimeSpan.FromSeconds(60));

        Assert.Equal(AgentExitCodes.AppNotReady, code);
        Assert.Contains("the app exited with code 1 before answering", log.Text);
        Assert.False(Directory.Exists(harness.SecretsDir), "the secrets outlived the failed cold start");
    }

    [Fact]
    public async Task UnreachableKms_RetriesBoundedThenExits_AppNeverStarts()
    {
        using var harness = new AgentHarness("lonely");
        var log = new LogSink();
        var clock = Stopwatch.StartNew();
        var options = harness.Options(new Uri($"https://127.0.0.1:{TestProcesses.FreePort()}"), RandomNumberGenerator.GetBytes(32), log) with { Tee = "sim" };

        // The simulated TEE needs its state directory even when the KMS is never reached.
        Directory.CreateDirectory(harness.SimDir);
        var code = await new Agent(options, harness.LaunchConfig).RunAsync(default);

        Assert.Equal(AgentExitCodes.KmsUnavailable, code);
        Assert.Contains("unreachable after 3 attempts", log.Text);
        Assert.True(clock.Elapsed < TimeSpan.FromSeconds(30));
        Assert.False(File.Exists(harness.Marker));
    }
}
