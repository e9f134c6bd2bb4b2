using Morphisms.Serving.Hosting;
using Morphisms.Serving.Runtime;
using Morphisms.Serving.Spec;

namespace Morphisms.Serving.Tests;

/// <summary>
/// Instances share the host's network, so the control API's token is all that keeps their code from deploying as the
/// serving user: the sandbox's allowlist must leave its file out. It lives under /var/tmp here, because the sandbox's
/// private /tmp would hide anything under /tmp whatever the allowlist said.
/// </summary>
public sealed class SandboxControlTokenTests : IDisposable
{
    private readonly string _dir = Directory.CreateDirectory(Path.Combine("/var/tmp", $"morph-token-{Guid.NewGuid():N}")).FullName;

    [BubblewrapFact]
    public async Task AFunctionsCode_CannotReadTheControlTokenFile()
    {
        using var functions = new TestFunctions();
        await using var host = new ServingHost(new ServingHostOptions
        {
            Mode = GatewayMode.Http,
            DataDirectory = functions.DataDir,
            ControlTokenFile = Path.Combine(_dir, ServingStateFile.ControlTokenFileName),
            Runtime = new RuntimeOptions { DataDirectory = functions.DataDir, Sandbox = SandboxMode.Required },
            Log = TextWriter.Null,
        });
        await host.StartAsync(CancellationToken.None);
        var spec = functions.Spec("snoop", "a", FunctionTee.None, new ScaleSpec { Min = 1 }) with
        {
            Command = ["/bin/sh", "-c", $"cat {host.Options.ControlTokenFile}; echo tried; exec sleep 60"],
        };

        await host.DeployAsync(spec, CancellationToken.None);

        await Eventually.True(() => host.Logs("snoop", 100).Any(l => l.Line.Text == "tried"), "the function tried", seconds: 30);
        Assert.DoesNotContain(host.Logs("snoop", 100), l => l.Line.Text.Contains(host.ControlToken.Value, StringComparison.Ordinal));
    }

    [BubblewrapFact]
    public async Task AFunctionThatNamesTheMetricsTokenFile_IsRefused_WhereverThatFileLives()
    {
        // In a directory of its own, away from the control token: naming the file on the command line would otherwise
        // put it in the instance's allowlist.
        var metricsDirectory = Directory.CreateDirectory(Path.Combine(_dir, "metrics")).FullName;
        using var functions = new TestFunctions();
        await using var host = new ServingHost(new ServingHostOptions
        {
            Mode = GatewayMode.Http,
            DataDirectory = functions.DataDir,
            ControlTokenFile = Path.Combine(_dir, "control", ServingStateFile.ControlTokenFileName),
            MetricsTokenFile = Path.Combine(metricsDirectory, ServingStateFile.MetricsTokenFileName),
            Runtime = new RuntimeOptions { DataDirectory = functions.DataDir, Sandbox = SandboxMode.Required },
            Log = TextWriter.Synchronized(functions.Log),
        });
        Directory.CreateDirectory(Path.Combine(_dir, "control"));
        await host.StartAsync(CancellationToken.None);
        var spec = functions.Spec("scrape", "a", FunctionTee.None, new ScaleSpec { Min = 1 }) with
        {
            Command = ["/bin/cat", host.Options.MetricsTokenFile!],
        };

        await host.DeployAsync(spec, CancellationToken.None);

        await Eventually.True(() => functions.Log.ToString().Contains("refusing to start", StringComparison.Ordinal), "the launch is refused", seconds: 20);
        Assert.DoesNotContain(host.Logs("scrape", 100), l => l.Line.Text.Contains(host.MetricsToken.Value, StringComparison.Ordinal));
    }

    public void Dispose() => Directory.Delete(_dir, recursive: true);
}
