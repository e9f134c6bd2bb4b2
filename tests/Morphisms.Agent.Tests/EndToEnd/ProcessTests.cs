using System.Diagnostics;
using System.Runtime.InteropServices;
using System.Text.Json.Nodes;

namespace Morphisms.Agent.Tests.EndToEnd;

/// <summary>The real <c>morph-init</c> executable: command line, structured stderr, SIGTERM forwarded and drained, the app's environment.</summary>
public sealed partial class ProcessTests
{
    [Fact]
    public async Task MorphInit_StartsTheApp_AndDrainsItOnSigterm()
    {
        using var harness = new AgentHarness("proc");
        await using var kms = await AgentKms.StartAsync(harness.SimDir);
        await kms.RegisterAsync("proc", harness.Measurement);
        await kms.PutBundleAsync("proc", new JsonObject { ["files"] = new JsonObject { ["greeting"] = "hi" } });
        var options = harness.Options(kms.Server.BaseAddress!, kms.Pin, TextWriter.Null);
        var launchConfig = Path.Combine(Path.GetDirectoryName(harness.BundleDir)!, "launch.json");
        await File.WriteAllBytesAsync(launchConfig, harness.LaunchConfig);

        var info = new ProcessStartInfo(options.App[0]) { RedirectStandardError = true, UseShellExecute = false };

        // morph-init empties the OS trust store for itself only: the app gets the variables as morph-init got them.
        var envReport = harness.SecretsDir + "-env-report";
        info.Environment["SSL_CERT_FILE"] = "/etc/app-trust/ca.pem";
        info.Environment.Remove("SSL_CERT_DIR");
        info.Environment["TEST_APP_ENV_REPORT"] = envReport;

        // The report token comes as the serving host hands it over, in a file named in the environment (never the token
        // on the command line or in the environment), goes out in the report's header only, and the file is gone.
        var reportToken = Convert.ToHexStringLower(System.Security.Cryptography.RandomNumberGenerator.GetBytes(32));
        var tokenFile = harness.SecretsDir + "-report-token";
        await File.WriteAllTextAsync(tokenFile, reportToken);
        info.Environment.Remove(AgentOptions.ReportTokenVariable);
        info.Environment[AgentOptions.ReportTokenFileVariable] = tokenFile;
        using var reports = new ReportCollector();
        string[] args =
        [
            Path.Combine(AppContext.BaseDirectory, "morph-init.dll"),
            "--kms", kms.Server.BaseAddress!.ToString(), "--kms-ca-sha256", Convert.ToHexStringLower(kms.Pin), "--function", "proc",
            "--tee", "sim", "--sim-dir", harness.SimDir, "--bundle", harness.BundleDir, "--launch-config", launchConfig,
            "--port", TestProcesses.FreePort().ToString(System.Globalization.CultureInfo.InvariantCulture), "--listen-address", "127.0.0.1",
            "--app-port", options.AppPort.ToString(System.Globalization.CultureInfo.InvariantCulture), "--secrets-dir", harness.SecretsDir,
            "--report-url", reports.Url.ToString(),
            "--", .. options.App,
        ];
        foreach (var arg in args)
        {
            info.ArgumentList.Add(arg);
        }

        using var agent = Process.Start(info)!;
        var lines = new List<string>();
        var ready = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        agent.ErrorDataReceived += (_, e) =>
        {
            if (e.Data is null)
            {
                return;
            }

            lock (lines)
            {
                lines.Add(e.Data);
            }

            if (e.Data.Contains("\"event\":\"cold_start\""))
            {
                ready.TrySetResult();
            }
        };
        agent.BeginErrorReadLine();
        try
        {
            await ready.Task.WaitAsync(TimeSpan.FromSeconds(60));
            Assert.True(File.Exists(harness.Marker));
            Assert.Equal("SSL_CERT_FILE=/etc/app-trust/ca.pem\nSSL_CERT_DIR=(unset)\nMORPH_REPORT_TOKEN=(unset)\nMORPH_REPORT_TOKEN_FILE=(unset)", await File.ReadAllTextAsync(envReport));
            Assert.False(File.Exists(tokenFile), "the report token file outlived the agent's start");
            await reports.Received.WaitAsync(TimeSpan.FromSeconds(10));
            Assert.Equal($"Bearer {reportToken}", reports.Authorization);

            Assert.Equal(0, Kill(agent.Id, 15));
            await agent.WaitForExitAsync().WaitAsync(TimeSpan.FromSeconds(30));
            Assert.Equal(0, agent.ExitCode);
            lock (lines)
            {
                Assert.Contains(lines, l => l.Contains("\"event\":\"exit\"") && l.Contains("drained"));
                Assert.All(lines, l => JsonNode.Parse(l));
                Assert.DoesNotContain(lines, l => l.Contains(reportToken, StringComparison.Ordinal));
            }
        }
        finally
        {
            if (!agent.HasExited)
            {
                agent.Kill(entireProcessTree: true);
            }
        }
    }

    [Fact]
    public async Task MorphInit_WithAReportTokenFileItCannotRead_ExitsTwo_BeforeStartingEvenAnEarlyApp()
    {
        using var harness = new AgentHarness("tokenless");
        var options = harness.Options(new Uri("https://127.0.0.1:9/"), new byte[32], TextWriter.Null);
        var missing = harness.SecretsDir + "-no-report-token";
        var info = new ProcessStartInfo(TestProcesses.DotnetHost) { RedirectStandardError = true, UseShellExecute = false };
        info.Environment.Remove(AgentOptions.ReportTokenVariable);
        info.Environment[AgentOptions.ReportTokenFileVariable] = missing;
        string[] args =
        [
            Path.Combine(AppContext.BaseDirectory, "morph-init.dll"),
            "--kms", "https://127.0.0.1:9/", "--kms-ca-sha256", new string('a', 64), "--function", "tokenless",
            "--tee", "sim", "--sim-dir", harness.SimDir, "--bundle", harness.BundleDir, "--app-start", "early",
            "--port", TestProcesses.FreePort().ToString(System.Globalization.CultureInfo.InvariantCulture), "--listen-address", "127.0.0.1",
            "--app-port", options.AppPort.ToString(System.Globalization.CultureInfo.InvariantCulture), "--secrets-dir", harness.SecretsDir,
            "--", .. options.App,
        ];
        foreach (var arg in args)
        {
            info.ArgumentList.Add(arg);
        }

        using var agent = Process.Start(info)!;
        var stderr = await agent.StandardError.ReadToEndAsync().WaitAsync(TimeSpan.FromSeconds(30));
        await agent.WaitForExitAsync().WaitAsync(TimeSpan.FromSeconds(30));

        Assert.Equal(AgentExitCodes.Usage, agent.ExitCode);
        Assert.StartsWith($"morph-init: cannot read the report token file {missing} ({AgentOptions.ReportTokenFileVariable})", stderr, StringComparison.Ordinal);
        Assert.False(File.Exists(harness.Marker), "the app started");
    }

    [LibraryImport("libc", EntryPoint = "kill")]
    private static partial int Kill(int pid, int signal);
}
