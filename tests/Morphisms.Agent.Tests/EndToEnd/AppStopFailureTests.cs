using System.ComponentModel;
using System.Diagnostics;
using System.Text.Json.Nodes;

namespace Morphisms.Agent.Tests.EndToEnd;

/// <summary>
/// Stopping the app can fail: the kill of its process tree throws when a process in it cannot be signalled. The secret
/// files must be deleted all the same, and the exit code must still say what ended the instance.
/// </summary>
public sealed class AppStopFailureTests
{
    private static JsonObject Bundle(string greeting) => new() { ["files"] = new JsonObject { ["greeting"] = greeting } };

    // Kills the app (so the test leaves nothing behind) and then fails as a tree with an unkillable member would.
    private static void KillThenFail(int pid)
    {
        try
        {
            using var process = Process.GetProcessById(pid);
            process.Kill(entireProcessTree: true);
        }
        catch (ArgumentException)
        {
        }

        throw new AggregateException(new Win32Exception(1, "Operation not permitted"));
    }

    [Fact]
    public async Task AStopOfARunningInstanceWhoseKillFails_StillWipesTheSecrets_AndExitsInternal()
    {
        using var harness = new AgentHarness("unkillable");
        await using var kms = await AgentKms.StartAsync(harness.SimDir);
        await kms.RegisterAsync("unkillable", harness.Measurement);
        await kms.PutBundleAsync("unkillable", Bundle("v1"));
        var log = new LogSink();
        var options = harness.Options(kms.Server.BaseAddress!, kms.Pin, log);

        // The app drains for longer than the agent waits, so the stop ends in the kill, which fails.
        var agent = new Agent(options with
        {
            App = [.. options.App, "--linger-ms", "30000"],
            DrainTimeout = TimeSpan.FromMilliseconds(500),
            KillAppForTests = KillThenFail,
        }, harness.LaunchConfig);
        using var stop = new CancellationTokenSource();
        var run = agent.RunAsync(stop.Token);
        await agent.Ready.WaitAsync(TimeSpan.FromSeconds(60));
        Assert.True(File.Exists(Path.Combine(harness.SecretsDir, "greeting")));

        await stop.CancelAsync();

        Assert.Equal(AgentExitCodes.Internal, await run.WaitAsync(TimeSpan.FromSeconds(30)));
        Assert.False(Directory.Exists(harness.SecretsDir), "the secrets were left behind because the app's kill failed");
        Assert.Contains("\"event\":\"app_stop_failed\"", log.Text);
        Assert.Contains("AggregateException", log.Text);
    }

    [Fact]
    public async Task AFailedColdStartWhoseKillFails_StillWipesTheSecrets_AndExitsWithTheColdStartsCode()
    {
        using var harness = new AgentHarness("unready");
        await using var kms = await AgentKms.StartAsync(harness.SimDir);
        await kms.RegisterAsync("unready", harness.Measurement);
        await kms.PutBundleAsync("unready", Bundle("v1"));
        var log = new LogSink();
        var options = harness.Options(kms.Server.BaseAddress!, kms.Pin, log);

        // An app that never answers (it hangs up on every connection) and lingers after SIGTERM: the cold start fails
        // after the secrets were written, and stopping the app ends in the kill, which fails.
        var agent = new Agent(options with
        {
            App = [.. options.App, "--hang-up", "1000000", "--linger-ms", "30000"],
            AppReadyTimeout = TimeSpan.FromSeconds(2),
            KillAppForTests = KillThenFail,
        }, harness.LaunchConfig);

        Assert.Equal(AgentExitCodes.AppNotReady, await agent.RunAsync(CancellationToken.None).WaitAsync(TimeSpan.FromSeconds(60)));
        Assert.False(Directory.Exists(harness.SecretsDir), "the secrets were left behind because the app's kill failed");
        Assert.Contains("\"event\":\"app_stop_failed\"", log.Text);
        Assert.Contains("did not answer", log.Text);
    }
}
