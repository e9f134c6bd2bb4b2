using System.Diagnostics;
using System.Globalization;
using System.Text.Json.Nodes;

namespace Morphisms.Agent.Tests.EndToEnd;

/// <summary>
/// morph-init makes itself non-dumpable before it holds anything: the app runs under the same uid, and could otherwise
/// read the agent's environment (the report token) and memory (the instance key, the KMS token) through /proc.
/// </summary>
public sealed class NonDumpableTests
{
    // Capabilities pass the kernel's check whatever the flag says (CAP_SYS_PTRACE; for /proc/PID/environ, on Linux 6.18,
    // CAP_SYS_ADMIN and CAP_PERFMON too), and root holds them all. So when this test process has any (CI runs as root),
    // the instance runs with none (setpriv, from util-linux, which every Debian has), as an unprivileged serving user's
    // does: the kernel then decides for the app exactly as for an unprivileged one, by the uid they share and whether
    // the agent is dumpable.
    [Fact]
    public async Task The_app_cannot_read_the_agents_environment_or_memory_but_stays_dumpable_itself()
    {
        using var harness = new AgentHarness("guarded");
        await using var kms = await AgentKms.StartAsync(harness.SimDir);
        await kms.RegisterAsync("guarded", harness.Measurement);
        await kms.PutBundleAsync("guarded", new JsonObject { ["files"] = new JsonObject { ["greeting"] = "hi" } });
        var options = harness.Options(kms.Server.BaseAddress!, kms.Pin, TextWriter.Null);
        var launchConfig = Path.Combine(Path.GetDirectoryName(harness.BundleDir)!, "launch.json");
        await File.WriteAllBytesAsync(launchConfig, harness.LaunchConfig);
        var parentReport = harness.SecretsDir + "-parent-report";

        var info = new ProcessStartInfo { RedirectStandardError = true, UseShellExecute = false };
        List<string> command = HoldsCapabilities() ? ["setpriv", "--bounding-set", "-all", "--", TestProcesses.DotnetHost] : [TestProcesses.DotnetHost];
        command.AddRange(
        [
            Path.Combine(AppContext.BaseDirectory, "morph-init.dll"),
            "--kms", kms.Server.BaseAddress!.ToString(), "--kms-ca-sha256", Convert.ToHexStringLower(kms.Pin), "--function", "guarded",
            "--tee", "sim", "--sim-dir", harness.SimDir, "--bundle", harness.BundleDir, "--launch-config", launchConfig,
            "--port", TestProcesses.FreePort().ToString(CultureInfo.InvariantCulture), "--listen-address", "127.0.0.1",
            "--app-port", options.AppPort.ToString(CultureInfo.InvariantCulture), "--secrets-dir", harness.SecretsDir,
            "--", .. options.App,
        ]);
        info.FileName = command[0];
        foreach (var arg in command.Skip(1))
        {
            info.ArgumentList.Add(arg);
        }

        // The agent takes the token out of its environment, but the kernel's copy in /proc/PID/environ keeps it.
        info.Environment[AgentOptions.ReportTokenVariable] = Convert.ToHexStringLower(System.Security.Cryptography.RandomNumberGenerator.GetBytes(32));
        info.Environment["TEST_APP_PARENT_REPORT"] = parentReport;

        using var agent = Process.Start(info)!;
        var log = new LogSink();
        var ready = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        agent.ErrorDataReceived += (_, e) =>
        {
            if (e.Data is null)
            {
                return;
            }

            log.WriteLine(e.Data);
            if (e.Data.Contains("\"event\":\"cold_start\"", StringComparison.Ordinal))
            {
                ready.TrySetResult();
            }
        };
        agent.BeginErrorReadLine();
        try
        {
            var exited = agent.WaitForExitAsync();
            Assert.True(await Task.WhenAny(ready.Task, exited).WaitAsync(TimeSpan.FromSeconds(60)) == ready.Task, log.Text);

            Assert.Equal("environ=denied;mem=denied;self_dumpable=1", await File.ReadAllTextAsync(parentReport));
            Assert.DoesNotContain("still_dumpable", log.Text, StringComparison.Ordinal);
        }
        finally
        {
            if (!agent.HasExited)
            {
                agent.Kill(entireProcessTree: true);
                await agent.WaitForExitAsync();
            }
        }
    }

    [Fact]
    public async Task A_failure_to_become_non_dumpable_is_a_warning_before_anything_else()
    {
        // No --sim-dir: the launch fails right after the warning, which must come first all the same.
        using var stderr = new LogSink();
        var code = await AgentCli.RunAsync(
            ["--kms", "https://127.0.0.1:9/", "--kms-ca-sha256", new string('a', 64), "--function", "f", "--tee", "sim", "--", "true"],
            TextWriter.Null, stderr, CancellationToken.None, "prctl(PR_SET_DUMPABLE, 0) failed: Invalid argument");

        Assert.NotEqual(0, code);
        var first = JsonNode.Parse(stderr.Text.Split('\n')[0])!;
        Assert.Equal("warn", (string?)first["level"]);
        Assert.Equal("still_dumpable", (string?)first["event"]);
        Assert.Contains("prctl(PR_SET_DUMPABLE, 0) failed: Invalid argument", (string?)first["msg"], StringComparison.Ordinal);
    }

    private static bool HoldsCapabilities()
    {
        var effective = File.ReadLines("/proc/self/status").First(l => l.StartsWith("CapEff:", StringComparison.Ordinal))["CapEff:".Length..].Trim();
        return ulong.Parse(effective, NumberStyles.HexNumber, CultureInfo.InvariantCulture) != 0;
    }
}
