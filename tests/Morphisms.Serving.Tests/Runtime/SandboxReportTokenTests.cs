using System.Security.Cryptography;
using Morphisms.Serving.Hosting;
using Morphisms.Serving.Runtime;
using Morphisms.Serving.Spec;

namespace Morphisms.Serving.Tests;

/// <summary>
/// A confidential instance's report token is its agent's: the app beside it must not find it anywhere in the sandbox.
/// The agent guards its own <c>/proc/PID/environ</c> by being non-dumpable, but bubblewrap's init, the sandbox's PID 1,
/// runs under the app's uid, dumpable, for the instance's whole life, and keeps the environment bubblewrap was started
/// with in <c>/proc/1/environ</c> (and its command line in <c>/proc/1/cmdline</c>, readable by anyone). So the host hands
/// the token over in a 0600 file of the instance's directory, which the agent deletes before it starts the app.
/// </summary>
public sealed class SandboxReportTokenTests(ServingKms kms) : IClassFixture<ServingKms>
{
    // Every environment and command line the app can read in the sandbox, one entry a line (a whole environment on one
    // line could be cut at the log's line limit, before the token), then the file PID 1's environment names and the
    // instance's directory; then the test app, so the instance gets ready and its agent reports.
    private const string Probe = """
        for f in /proc/[0-9]*/environ /proc/[0-9]*/cmdline; do
          if entries=$(tr '\0' '\n' < "$f" 2>/dev/null); then
            printf '%s\n' "$entries" | while IFS= read -r entry; do echo "probe $f: $entry"; done
          else
            echo "probe $f: unreadable"
          fi
        done
        named=$(tr '\0' '\n' < /proc/1/environ | sed -n 's/^MORPH_REPORT_TOKEN_FILE=//p')
        if [ -z "$named" ]; then
          echo "probe token file: not named"
        elif [ -e "$named" ]; then
          echo "probe token file: present"
          while IFS= read -r line || [ -n "$line" ]; do echo "probe token file: $line"; done < "$named"
        else
          echo "probe token file: absent"
        fi
        for f in "${MORPH_SECRETS_DIR%/*}"/*; do echo "probe instance directory: ${f##*/}"; done
        echo "probe done"
        exec "$@"
        """;

    [Fact]
    public async Task The_token_file_is_the_instances_alone_from_the_start_and_no_spec_can_redirect_or_preempt_it()
    {
        var root = Directory.CreateDirectory(Path.Combine("/var/tmp", "morph-report-token-" + Convert.ToHexStringLower(RandomNumberGenerator.GetBytes(6)))).FullName;
        try
        {
            var data = Path.Combine(root, "data");
            var options = new RuntimeOptions
            {
                DataDirectory = data,
                Sandbox = SandboxMode.Off,
                KmsUrl = new Uri("https://127.0.0.1:1/"),
                ReportUrl = new Uri("http://127.0.0.1:1/"),
                SimulatedTeeDirectory = Path.Combine(root, "simulated-tee"),
                MorphInit = ["/bin/sh", "-c", """
                    echo "file: $MORPH_REPORT_TOKEN_FILE"
                    echo "mode: $(stat -c %a "$MORPH_REPORT_TOKEN_FILE")"
                    echo "token: ${MORPH_REPORT_TOKEN-unset}"
                    """, "morph-init"],
            };
            var bundle = Directory.CreateDirectory(Path.Combine(root, "bundle")).FullName;

            // A spec's env is the function author's, and is set before the launcher's own variables.
            var spec = new FunctionSpec
            {
                Name = "probe",
                Tee = FunctionTee.Sim,
                Bundle = bundle,
                Command = ["/bin/true"],
                Env = new Dictionary<string, string>
                {
                    [ProcessInstanceLauncher.ReportTokenVariable] = "planted",
                    [ProcessInstanceLauncher.ReportTokenFileVariable] = Path.Combine(bundle, "elsewhere"),
                },
            };

            var output = await SandboxProbe.RunAsync(options, spec);

            Assert.Equal(
                [$"file: {Path.Combine(data, "instances", "probe-1", ProcessInstanceLauncher.ReportTokenFileName)}", "mode: 600", "token: unset"],
                output);
        }
        finally
        {
            Directory.Delete(root, recursive: true);
        }
    }

    public static TheoryData<string> AppStarts => new() { "after-secrets", "early" };

    [BubblewrapTheory]
    [MemberData(nameof(AppStarts))]
    public async Task The_app_finds_its_agents_report_token_nowhere_and_the_agent_still_reports_with_it(string appStart)
    {
        var name = $"token-{appStart}";
        using var functions = new TestFunctions();
        await kms.PutBundleAsync(name);
        var host = await functions.HostAsync(GatewayMode.Confidential, kms.Connection, kms.SimDir);
        ProcessInstance process;
        List<string> lines;
        try
        {
            var spec = functions.Spec(name, "a", scale: new ScaleSpec { Min = 1 });
            spec = spec with
            {
                Command = ["/bin/sh", "-c", Probe, "probe", .. spec.Command],
                Env = new Dictionary<string, string>(spec.Env) { ["MORPH_APP_START"] = appStart },
            };

            var deployed = await host.DeployAsync(spec, CancellationToken.None);
            await Eventually.True(() => host.Instances.Ready(deployed.Revision).Count == 1, "ready through its agent's report", seconds: 60);
            process = (ProcessInstance)Assert.Single(host.Supervisor(deployed.Revision)!.Snapshot()).Process;

            // Readiness takes the agent's cold_start log line too, which comes first: only the accepted POST shows that
            // the agent had the token. A refused one (401) would be a cold_start_report warning in its log.
            var posted = await Task.WhenAny(process.ReportPosted, Task.Delay(TimeSpan.FromSeconds(20)));
            lines = [.. process.Logs.Snapshot().Select(l => l.Text)];
            Assert.True(posted == process.ReportPosted, "no report accepted: " + string.Join('\n', lines.Where(l => l.Contains("cold_start_report", StringComparison.Ordinal))));
        }
        finally
        {
            await host.DisposeAsync();
        }

        var token = process.ReportToken!.Value;
        Assert.Contains(lines, l => l.StartsWith("started morph-init pid ", StringComparison.Ordinal) && l.EndsWith(" under bubblewrap", StringComparison.Ordinal));
        Assert.Contains("probe done", lines);
        Assert.DoesNotContain(lines, l => l.Contains(token, StringComparison.Ordinal));

        // The probe did see what the token used to sit in: PID 1 is bubblewrap, whose environment and command line it reads.
        Assert.Contains(lines, l => l.StartsWith("probe /proc/1/cmdline: ", StringComparison.Ordinal) && l.EndsWith("bwrap", StringComparison.Ordinal));
        Assert.Contains(lines, l => l.StartsWith("probe /proc/1/environ: PATH=", StringComparison.Ordinal));
        Assert.Contains(lines, l => l.StartsWith($"probe /proc/1/environ: {ProcessInstanceLauncher.ReportTokenFileVariable}=", StringComparison.Ordinal));
        Assert.DoesNotContain(lines, l => l.StartsWith($"probe /proc/1/environ: {ProcessInstanceLauncher.ReportTokenVariable}=", StringComparison.Ordinal));
        Assert.Contains("probe token file: absent", lines);
        Assert.DoesNotContain($"probe instance directory: {ProcessInstanceLauncher.ReportTokenFileName}", lines);
    }
}
