using System.Net.Http.Json;
using System.Text.Json.Nodes;
using Morphisms.Agent.Evidence;
using Morphisms.Kms;

namespace Morphisms.Agent.Tests.EndToEnd;

/// <summary>
/// A running instance against a KMS whose answers change under it: an unusable bundle version, a deleted bundle, and
/// access taken away. None of them may crash the agent; only the last may stop the app.
/// </summary>
public sealed class MaintenanceTests
{
    private static JsonObject Bundle(string greeting) => new() { ["files"] = new JsonObject { ["greeting"] = greeting } };

    [Fact]
    public async Task AnUnusableOrDeletedBundle_LeavesTheAppServingTheLastGoodVersion()
    {
        using var harness = new AgentHarness("keeper");
        await using var kms = await AgentKms.StartAsync(harness.SimDir);
        await kms.RegisterAsync("keeper", harness.Measurement);
        await kms.PutBundleAsync("keeper", Bundle("v1"));
        var log = new LogSink();
        var agent = new Agent(harness.Options(kms.Server.BaseAddress!, kms.Pin, log), harness.LaunchConfig);
        using var stop = new CancellationTokenSource();
        var run = agent.RunAsync(stop.Token);
        await agent.Ready.WaitAsync(TimeSpan.FromSeconds(60));
        var greeting = Path.Combine(harness.SecretsDir, "greeting");

        // Version 2 names a file outside the directory: refused as a whole, once.
        await kms.PutBundleAsync("keeper", new JsonObject { ["files"] = new JsonObject { ["../escaped"] = "x", ["greeting"] = "v2" } });
        await Eventually.Until(() => log.Text.Contains("\"event\":\"secrets_rejected\""), "the bad version is rejected");
        Assert.Equal("v1", File.ReadAllText(greeting));
        Assert.False(File.Exists(Path.Combine(Path.GetDirectoryName(harness.SecretsDir)!, "escaped")));

        // Version 3 is good again, and applied.
        await kms.PutBundleAsync("keeper", Bundle("v3"));
        await Eventually.Until(() => File.Exists(greeting) && File.ReadAllText(greeting) == "v3", "version 3 reaches the app");

        // The bundle's latest version deleted: the app keeps version 3.
        (await kms.Root.DeleteAsync("v1/secret/data/keeper")).EnsureSuccessStatusCode();
        await Eventually.Until(() => log.Text.Contains("\"event\":\"secrets_unavailable\""), "the deleted bundle is noticed");
        Assert.Equal("v3", File.ReadAllText(greeting));

        Assert.False(run.IsCompleted, log.Text);
        Assert.Equal(1, Count(log.Text, "\"event\":\"secrets_rejected\""));
        await stop.CancelAsync();
        Assert.Equal(0, await run.WaitAsync(TimeSpan.FromSeconds(30)));
        Assert.False(Directory.Exists(harness.SecretsDir), "the secrets are wiped once the app has stopped");
    }

    [Fact]
    public async Task ACertificateCappedBelowTheTokenMaxTtl_IsRolledOverBeforeItExpires()
    {
        // The KMS caps the certificate at its least, 1 minute (90 s of life with its 30 s backdate), while the token may
        // live an hour: the agent must re-attest on the certificate's schedule, not wait for the token's. Two thirds
        // through the minute it had left on arrival (40 s), not through its backdated 90 s (30 s after arrival).
        using var harness = new AgentHarness("capped");
        await using var kms = await AgentKms.StartAsync(harness.SimDir, functionCertificateMaxTtl: KmsServerOptions.MinFunctionCertificateMaxTtl);
        await kms.RegisterAsync("capped", harness.Measurement, tokenTtl: "30s", tokenMaxTtl: "1h");
        await kms.PutBundleAsync("capped", Bundle("v1"));
        var log = new LogSink();
        var agent = new Agent(harness.Options(kms.Server.BaseAddress!, kms.Pin, log), harness.LaunchConfig);
        using var stop = new CancellationTokenSource();
        var run = agent.RunAsync(stop.Token);
        await agent.Ready.WaitAsync(TimeSpan.FromSeconds(60));
        var first = agent.Maintainer!.Current.Certificate.Certificate;
        Assert.Equal(TimeSpan.FromSeconds(90), first.NotAfter - first.NotBefore);
        var (firstExpires, firstBytes, received) = (first.NotAfter.ToUniversalTime(), first.RawData, agent.Maintainer.Current.At);

        await Eventually.Until(() => agent.Maintainer.Reattestations >= 1, "a certificate rollover", TimeSpan.FromSeconds(75));
        Assert.Contains("re-attested: certificate rollover", log.Text);
        Assert.True(DateTimeOffset.UtcNow >= received + TimeSpan.FromSeconds(35), "rolled over two thirds through the life left, not the backdated one");
        Assert.True(DateTime.UtcNow < firstExpires, "rolled over before the old certificate expired");
        Assert.NotEqual(firstBytes, agent.Maintainer.Current.Certificate.Certificate.RawData);

        Assert.False(run.IsCompleted, log.Text);
        await stop.CancelAsync();
        Assert.Equal(0, await run.WaitAsync(TimeSpan.FromSeconds(30)));
    }

    [Fact]
    public async Task AccessTakenAway_DeprovisionsAfterOneFreshAttestation_AndWipesTheSecrets()
    {
        using var harness = new AgentHarness("revoked");
        await using var kms = await AgentKms.StartAsync(harness.SimDir);
        await kms.RegisterAsync("revoked", harness.Measurement);
        await kms.PutBundleAsync("revoked", Bundle("v1"));
        var log = new LogSink();
        var agent = new Agent(harness.Options(kms.Server.BaseAddress!, kms.Pin, log), harness.LaunchConfig);
        var run = agent.RunAsync(default);
        await agent.Ready.WaitAsync(TimeSpan.FromSeconds(60));
        Assert.True(File.Exists(Path.Combine(harness.SecretsDir, "greeting")));

        // The function's policy goes: every token it gets, old or new, is refused the bundle.
        (await kms.Root.DeleteAsync("v1/sys/policies/acl/revoked")).EnsureSuccessStatusCode();

        Assert.Equal(AgentExitCodes.Secrets, await run.WaitAsync(TimeSpan.FromSeconds(30)));
        Assert.Contains("\"event\":\"deprovisioned\"", log.Text);
        Assert.Contains("re-attested: secret read refused", log.Text);
        Assert.Equal(1, agent.Maintainer!.Reattestations);
        Assert.False(Directory.Exists(harness.SecretsDir));
    }

    [Fact]
    public async Task TheFunctionDeleted_DeprovisionsWithExitThree_AndWipesTheSecrets()
    {
        // DELETE revokes the instance's token; the fresh attestation that follows the refused secret read is then refused
        // at the challenge (404: no such function). That is a verdict like a refused login, not a KMS outage to retry.
        using var harness = new AgentHarness("doomed");
        await using var kms = await AgentKms.StartAsync(harness.SimDir);
        await kms.RegisterAsync("doomed", harness.Measurement);
        await kms.PutBundleAsync("doomed", Bundle("v1"));
        var log = new LogSink();
        var agent = new Agent(harness.Options(kms.Server.BaseAddress!, kms.Pin, log), harness.LaunchConfig);
        var run = agent.RunAsync(default);
        await agent.Ready.WaitAsync(TimeSpan.FromSeconds(60));
        Assert.True(File.Exists(Path.Combine(harness.SecretsDir, "greeting")));

        (await kms.Root.DeleteAsync("v1/morphisms/functions/doomed")).EnsureSuccessStatusCode();

        Assert.Equal(AgentExitCodes.AttestationRefused, await run.WaitAsync(TimeSpan.FromSeconds(30)));
        Assert.Contains("\"event\":\"deprovisioned\"", log.Text);
        Assert.Contains("function doomed is not registered", log.Text);
        Assert.False(Directory.Exists(harness.SecretsDir));
    }

    [Fact]
    public async Task AListenerReopenedWithSoReusePortOnReload_StopsTheAppWithExitSeven_AndWipesTheSecrets()
    {
        // The readiness check passed, then the SIGHUP of a new secret version has the app reopen its listener with
        // SO_REUSEPORT, which another process of its user could now join: the check runs again and stops the instance.
        using var harness = new AgentHarness("reopened");
        await using var kms = await AgentKms.StartAsync(harness.SimDir);
        await kms.RegisterAsync("reopened", harness.Measurement);
        await kms.PutBundleAsync("reopened", Bundle("v1"));
        var log = new LogSink();
        var options = harness.Options(kms.Server.BaseAddress!, kms.Pin, log);
        var agent = new Agent(options with { App = [.. options.App, "--reuse-port-after-hup"] }, harness.LaunchConfig);
        var run = agent.RunAsync(default);
        await agent.Ready.WaitAsync(TimeSpan.FromSeconds(60));

        await kms.PutBundleAsync("reopened", Bundle("v2"));

        Assert.Equal(AgentExitCodes.AppNotReady, await run.WaitAsync(TimeSpan.FromSeconds(30)));
        Assert.Contains("\"event\":\"app_listener_refused\"", log.Text);
        Assert.Contains($"listener on 127.0.0.1:{options.AppPort} (socket inode", log.Text);
        Assert.Contains("has SO_REUSEPORT set", log.Text);
        Assert.False(Directory.Exists(harness.SecretsDir));
    }

    [Fact]
    public async Task AReloadCommandThatHangs_IsKilledAfterItsTimeout_AndRenewalGoesOn()
    {
        // The maintenance loop waits for the reload command: one that never ends must not stop renewal and rollover.
        using var harness = new AgentHarness("hung");
        await using var kms = await AgentKms.StartAsync(harness.SimDir);
        await kms.RegisterAsync("hung", harness.Measurement, tokenTtl: "4s", tokenMaxTtl: "1h");
        await kms.PutBundleAsync("hung", Bundle("v1"));
        var log = new LogSink();
        var pidFile = Path.Combine(Path.GetDirectoryName(harness.SecretsDir)!, "reload.pid");
        var options = harness.Options(kms.Server.BaseAddress!, kms.Pin, log) with
        {
            ReloadCommand = $"echo $$ > '{pidFile}'; exec sleep 3600",
            ReloadTimeout = TimeSpan.FromSeconds(1),
        };
        var agent = new Agent(options, harness.LaunchConfig);
        using var stop = new CancellationTokenSource();
        var run = agent.RunAsync(stop.Token);
        await agent.Ready.WaitAsync(TimeSpan.FromSeconds(60));

        await kms.PutBundleAsync("hung", Bundle("v2"));
        await Eventually.Until(() => log.Text.Contains("\"event\":\"reload_failed\""), "the hung reload command is given up on", TimeSpan.FromSeconds(20));
        Assert.Contains("still running after 1 s: killed", log.Text);
        var afterReload = log.Text.Length;
        await Eventually.Until(() => log.Text[afterReload..].Contains("\"event\":\"token_renewed\""), "a renewal after the hung reload", TimeSpan.FromSeconds(20));

        // The command's process (the shell exec'd into sleep) was killed, not left behind.
        var pid = int.Parse(File.ReadAllText(pidFile).Trim(), System.Globalization.CultureInfo.InvariantCulture);
        await Eventually.Until(() => Gone(pid), "the reload command is gone");

        Assert.False(run.IsCompleted, log.Text);
        await stop.CancelAsync();
        Assert.Equal(0, await run.WaitAsync(TimeSpan.FromSeconds(30)));
    }

    [Fact]
    public async Task AReloadCommandThatCannotBeStarted_IsLoggedAsFailed_AndTheAppKeepsServing()
    {
        // A single argument over the kernel's 128 KiB limit: execve fails with E2BIG, which Process.Start reports by
        // throwing (as it does for a missing shell or a fork that runs out of memory).
        using var harness = new AgentHarness("unstartable");
        await using var kms = await AgentKms.StartAsync(harness.SimDir);
        await kms.RegisterAsync("unstartable", harness.Measurement);
        await kms.PutBundleAsync("unstartable", Bundle("v1"));
        var log = new LogSink();
        var options = harness.Options(kms.Server.BaseAddress!, kms.Pin, log) with
        {
            ReloadCommand = "true # reload-command-5d2a " + new string('x', 200_000),
        };
        var agent = new Agent(options, harness.LaunchConfig);
        using var stop = new CancellationTokenSource();
        var run = agent.RunAsync(stop.Token);
        await agent.Ready.WaitAsync(TimeSpan.FromSeconds(60));

        await kms.PutBundleAsync("unstartable", Bundle("v2"));
        await Eventually.Until(() => log.Text.Contains("\"event\":\"reload_failed\""), "the reload command that cannot start is reported");
        Assert.Contains("reload command could not be started", log.Text);
        Assert.DoesNotContain("reload-command-5d2a", log.Text);
        Assert.Equal("v2", File.ReadAllText(Path.Combine(harness.SecretsDir, "greeting")));

        // The instance goes on: the next version is applied (and its reload fails the same way), and a stop is clean.
        await kms.PutBundleAsync("unstartable", Bundle("v3"));
        await Eventually.Until(() => File.ReadAllText(Path.Combine(harness.SecretsDir, "greeting")) == "v3", "version 3 applied after the failed reload");
        Assert.False(run.IsCompleted, log.Text);
        await stop.CancelAsync();
        Assert.Equal(0, await run.WaitAsync(TimeSpan.FromSeconds(30)));
    }

    [Fact]
    public async Task AnUpdateThatFailsPartWay_IsLoggedAsPartial_TheAppIsSignalled_AndTheNextPollCompletesIt()
    {
        using var harness = new AgentHarness("partial");
        await using var kms = await AgentKms.StartAsync(harness.SimDir);
        await kms.RegisterAsync("partial", harness.Measurement);
        await kms.PutBundleAsync("partial", new JsonObject { ["files"] = new JsonObject { ["greeting"] = "v1", ["second"] = "v1" } });
        var log = new LogSink();
        var agent = new Agent(harness.Options(kms.Server.BaseAddress!, kms.Pin, log), harness.LaunchConfig);
        using var stop = new CancellationTokenSource();
        var run = agent.RunAsync(stop.Token);
        await agent.Ready.WaitAsync(TimeSpan.FromSeconds(60));
        var second = Path.Combine(harness.SecretsDir, "second");

        // Between the checks and the renames, a directory takes the place of "second": "greeting" is replaced, then the
        // update stops.
        var blocked = 0;
        agent.Maintainer!.Secrets.BeforeReplaceForTests = name =>
        {
            if (name == "second" && Interlocked.Exchange(ref blocked, 1) == 0)
            {
                File.Delete(second);
                Directory.CreateDirectory(Path.Combine(second, "sub"));
            }
        };
        await kms.PutBundleAsync("partial", new JsonObject { ["files"] = new JsonObject { ["greeting"] = "v2", ["second"] = "v2" } });
        await Eventually.Until(() => log.Text.Contains("\"event\":\"secrets_partially_applied\""), "the partial update is reported as partial");
        var line = log.Text.Split('\n').First(l => l.Contains("\"event\":\"secrets_partially_applied\"", StringComparison.Ordinal));
        Assert.Equal(["greeting"], JsonNode.Parse(line)!["files_changed"]!.AsArray().Select(n => n!.GetValue<string>()));
        Assert.Equal("v2", File.ReadAllText(Path.Combine(harness.SecretsDir, "greeting")));
        Assert.Empty(Directory.EnumerateFiles(harness.SecretsDir, "*.tmp"));
        Assert.DoesNotContain("\"event\":\"secrets_not_applied\"", line);

        // The app was told to reload what changed (the test app counts SIGHUPs).
        using var client = new HttpClient(new SocketsHttpHandler { SslOptions = { RemoteCertificateValidationCallback = (_, _, _, _) => true } });
        var deadline = DateTime.UtcNow + TimeSpan.FromSeconds(20);
        while ((await client.GetStringAsync($"https://localhost:{agent.Port}/")).Contains("hups=0;", StringComparison.Ordinal))
        {
            Assert.True(DateTime.UtcNow < deadline, "the app got no SIGHUP for the files that changed");
            await Task.Delay(50);
        }

        // Once the directory is gone, the next poll completes version 2.
        Directory.Delete(second, recursive: true);
        await Eventually.Until(() => File.Exists(second) && File.ReadAllText(second) == "v2", "the rest of version 2 applied");
        Assert.Contains("\"event\":\"secrets_updated\"", log.Text);

        Assert.False(run.IsCompleted, log.Text);
        await stop.CancelAsync();
        Assert.Equal(0, await run.WaitAsync(TimeSpan.FromSeconds(30)));
    }

    [Fact]
    public async Task AStopDuringASecretUpdate_WipesTheSecretsOnlyOnceTheUpdateHasEnded()
    {
        using var harness = new AgentHarness("midway");
        await using var kms = await AgentKms.StartAsync(harness.SimDir);
        await kms.RegisterAsync("midway", harness.Measurement);
        await kms.PutBundleAsync("midway", Bundle("v1"));
        var log = new LogSink();
        var agent = new Agent(harness.Options(kms.Server.BaseAddress!, kms.Pin, log), harness.LaunchConfig);
        using var stop = new CancellationTokenSource();
        var run = agent.RunAsync(stop.Token);
        await agent.Ready.WaitAsync(TimeSpan.FromSeconds(60));

        // The maintainer is held inside the update to version 2 when the stop comes.
        using var entered = new ManualResetEventSlim();
        using var release = new ManualResetEventSlim();
        agent.Maintainer!.BeforeApplyForTests = () =>
        {
            entered.Set();
            release.Wait(TimeSpan.FromSeconds(30));
        };
        await kms.PutBundleAsync("midway", Bundle("v2"));
        await Eventually.Until(() => entered.IsSet, "the maintainer about to write version 2");
        await stop.CancelAsync();

        // The app drains and the listener closes; the wipe waits for the update, which would otherwise write after it.
        await agent.Maintainer.App!.Exited.WaitAsync(TimeSpan.FromSeconds(30));
        await Task.Delay(Agent.ConnectionDrain + TimeSpan.FromMilliseconds(500));
        Assert.False(run.IsCompleted, log.Text);
        Assert.True(Directory.Exists(harness.SecretsDir), "the secrets were wiped while an update was still writing them");

        release.Set();
        Assert.Equal(0, await run.WaitAsync(TimeSpan.FromSeconds(30)));
        Assert.False(Directory.Exists(harness.SecretsDir), "the secrets are wiped once the update has ended");
    }

    [Fact]
    public async Task ASecretPathMovedAtReattestation_IsApplied_ThoughItsVersionIsLower()
    {
        // Versions count per path: the bundle at the new path is at version 3, the one the app has at version 5.
        using var harness = new AgentHarness("mover");
        await using var kms = await AgentKms.StartAsync(harness.SimDir);
        const string moved = "secret/data/mover-moved";

        // A token that cannot be renewed to its full TTL: the agent re-attests every second and learns the path anew.
        await kms.RegisterAsync("mover", harness.Measurement, tokenTtl: "2s", tokenMaxTtl: "2s");
        for (var v = 1; v <= 5; v++)
        {
            await kms.PutBundleAsync("mover", Bundle($"a{v}"));
        }

        for (var v = 1; v <= 3; v++)
        {
            await kms.PutBundleAsync("mover", Bundle($"b{v}"), moved);
        }

        var log = new LogSink();
        var agent = new Agent(harness.Options(kms.Server.BaseAddress!, kms.Pin, log), harness.LaunchConfig);
        using var stop = new CancellationTokenSource();
        var run = agent.RunAsync(stop.Token);
        await agent.Ready.WaitAsync(TimeSpan.FromSeconds(60));
        var greeting = Path.Combine(harness.SecretsDir, "greeting");
        Assert.Equal("a5", File.ReadAllText(greeting));

        await kms.RegisterAsync("mover", harness.Measurement, tokenTtl: "2s", tokenMaxTtl: "2s", secretPath: moved);
        var function = await kms.Root.GetFromJsonAsync<JsonObject>("v1/morphisms/functions/mover");
        Assert.Equal(moved, function!["data"]!["secret_path"]!.GetValue<string>());
        await Eventually.Until(() => File.ReadAllText(greeting) == "b3", "the bundle at the moved path reaches the app");
        Assert.Contains("\"event\":\"reattested\"", log.Text);

        Assert.False(run.IsCompleted, log.Text);
        await stop.CancelAsync();
        Assert.Equal(0, await run.WaitAsync(TimeSpan.FromSeconds(30)));
    }

    [Fact]
    public async Task EvidenceFailingOnceAtReattestation_IsRetried_AndTheAppKeepsServing()
    {
        using var harness = new AgentHarness("flaky");
        await using var kms = await AgentKms.StartAsync(harness.SimDir);

        // A token that cannot be renewed to its full TTL: the agent re-attests about every second.
        await kms.RegisterAsync("flaky", harness.Measurement, tokenTtl: "2s", tokenMaxTtl: "2s");
        await kms.PutBundleAsync("flaky", Bundle("v1"));
        var log = new LogSink();
        FlakyEvidence? flaky = null;
        var agent = new Agent(harness.Options(kms.Server.BaseAddress!, kms.Pin, log) with { WrapEvidence = p => flaky = new FlakyEvidence(p, failCall: 2) }, harness.LaunchConfig);
        using var stop = new CancellationTokenSource();
        var run = agent.RunAsync(stop.Token);
        await agent.Ready.WaitAsync(TimeSpan.FromSeconds(60));

        // The first re-attestation finds the firmware busy; the next round gets evidence and re-attests.
        await Eventually.Until(() => agent.Maintainer!.Reattestations >= 1 || run.IsCompleted, "a re-attestation after the failed one");
        Assert.False(run.IsCompleted, log.Text);
        Assert.True(flaky!.Failed, "the provider failed once");
        Assert.Contains("\"event\":\"evidence_unavailable\"", log.Text);
        Assert.DoesNotContain("\"event\":\"deprovisioned\"", log.Text);
        await stop.CancelAsync();
        Assert.Equal(0, await run.WaitAsync(TimeSpan.FromSeconds(30)));
    }

    // Fails the failCall-th evidence request as a busy SNP firmware would, and passes every other one (and the measured
    // pin) through.
    private sealed class FlakyEvidence(IEvidenceProvider inner, int failCall) : IEvidenceProvider, IMeasuredPinSource
    {
        private int _calls;

        public bool Failed { get; private set; }

        public string Name => inner.Name;

        public Task<TeeEvidence> GetEvidenceAsync(ReadOnlyMemory<byte> reportData, CancellationToken ct)
        {
            if (Interlocked.Increment(ref _calls) == failCall)
            {
                Failed = true;
                throw new EvidenceException("SNP_GET_REPORT: firmware busy");
            }

            return inner.GetEvidenceAsync(reportData, ct);
        }

        public Task<MeasuredPin> ReadKmsCaPinAsync(CancellationToken ct) =>
            ((IMeasuredPinSource)inner).ReadKmsCaPinAsync(ct);
    }

    // Reaped, or a zombie: either way it runs no more.
    private static bool Gone(int pid)
    {
        try
        {
            return File.ReadAllText($"/proc/{pid}/stat").Contains(") Z ", StringComparison.Ordinal);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            return true;
        }
    }

    private static int Count(string text, string what) => (text.Length - text.Replace(what, "", StringComparison.Ordinal).Length) / what.Length;
}
