using System.Net.Security;
using System.Security.Cryptography;
using System.Text.Json.Nodes;

namespace Morphisms.Agent.Tests.EndToEnd;

/// <summary>
/// <see cref="AppStart.Early"/>: the app starts while the agent attests, but gets its secrets (and a connection) only
/// after attestation and provisioning succeeded; a refusal stops it without ever releasing it.
/// </summary>
public sealed class EarlyStartTests
{
    [Fact]
    public async Task EarlyApp_IsReleasedAfterSecrets_AndServesThem()
    {
        using var harness = new AgentHarness("early");
        await using var kms = await AgentKms.StartAsync(harness.SimDir);
        await kms.RegisterAsync("early", harness.Measurement);
        await kms.PutBundleAsync("early", new JsonObject { ["files"] = new JsonObject { ["greeting"] = "early-v1" } });
        var log = new LogSink();
        var agent = new Agent(harness.Options(kms.Server.BaseAddress!, kms.Pin, log) with { AppStart = AppStart.Early }, harness.LaunchConfig);
        using var stop = new CancellationTokenSource();
        var run = agent.RunAsync(stop.Token);
        await agent.Ready.WaitAsync(TimeSpan.FromSeconds(60));

        var body = await GetAsync(agent);
        Assert.Contains("greeting=early-v1", body);
        Assert.Equal("started;released", await File.ReadAllTextAsync(harness.Marker));
        var phases = agent.ColdStart!["phases_ms"]!.AsObject().Select(p => p.Key).ToList();
        Assert.True(phases.IndexOf("app_spawn") < phases.IndexOf("challenge"), string.Join(",", phases));
        Assert.Contains("\"app_start\":\"early\"", log.Text);
        Assert.DoesNotContain("app_restart", log.Text);

        await stop.CancelAsync();
        Assert.Equal(0, await run.WaitAsync(TimeSpan.FromSeconds(30)));
    }

    [Fact]
    public async Task EarlyApp_RefusedAttestation_StopsTheAppUnreleasedWithoutSecrets()
    {
        using var harness = new AgentHarness("early-refused");
        await using var kms = await AgentKms.StartAsync(harness.SimDir);
        await kms.RegisterAsync("early-refused", SHA384.HashData("some other build"u8));
        await kms.PutBundleAsync("early-refused", new JsonObject { ["files"] = new JsonObject { ["greeting"] = "never" } });
        var log = new LogSink();
        var options = harness.Options(kms.Server.BaseAddress!, kms.Pin, log) with { AppStart = AppStart.Early };

        var code = await new Agent(options, harness.LaunchConfig).RunAsync(default).WaitAsync(TimeSpan.FromSeconds(60));

        Assert.Equal(AgentExitCodes.AttestationRefused, code);
        await AssertStoppedUnreleasedAsync(harness, options);
    }

    [Fact]
    public async Task EarlyApp_RefusedPin_StopsTheAppUnreleased_BeforeContactingTheKms()
    {
        // The early app is spawned before the pin is settled; a pin refusal must stop it like an attestation refusal.
        using var harness = new AgentHarness("early-pin");
        var log = new LogSink();
        var options = harness.Options(new Uri($"https://127.0.0.1:{TestProcesses.FreePort()}"), RandomNumberGenerator.GetBytes(32), log) with
        {
            AppStart = AppStart.Early,
            AllowUnmeasuredPin = true,
        };
        options = options with { Simulated = options.Simulated with { HostData = RandomNumberGenerator.GetBytes(32) } };

        var code = await new Agent(options, harness.LaunchConfig).RunAsync(default).WaitAsync(TimeSpan.FromSeconds(60));

        Assert.Equal(AgentExitCodes.Usage, code);
        Assert.Contains("differs from the measured one", log.Text);
        Assert.DoesNotContain("unreachable", log.Text);
        await AssertStoppedUnreleasedAsync(harness, options);
    }

    [Fact]
    public async Task EarlyApp_TerminatorCannotListen_StopsTheReleasedApp()
    {
        // The terminator starts beside the secrets and the release: its failure comes after the app was released,
        // and must still stop it, with an exit code that names the port.
        using var harness = new AgentHarness("early-listen");
        await using var kms = await AgentKms.StartAsync(harness.SimDir);
        await kms.RegisterAsync("early-listen", harness.Measurement);
        await kms.PutBundleAsync("early-listen", new JsonObject { ["files"] = new JsonObject { ["greeting"] = "early-v1" } });
        using var taken = new System.Net.Sockets.TcpListener(System.Net.IPAddress.Loopback, 0);
        taken.Start();
        var port = ((System.Net.IPEndPoint)taken.LocalEndpoint).Port;
        var log = new LogSink();
        var options = harness.Options(kms.Server.BaseAddress!, kms.Pin, log) with { AppStart = AppStart.Early, Port = port };
        var agent = new Agent(options, harness.LaunchConfig);

        var code = await agent.RunAsync(default).WaitAsync(TimeSpan.FromSeconds(60));

        Assert.Equal(AgentExitCodes.ListenFailed, code);
        Assert.Contains($"cannot listen on 127.0.0.1:{port}", log.Text);
        Assert.DoesNotContain("\"event\":\"cold_start\"", log.Text);
        Assert.False(agent.Ready.IsCompletedSuccessfully);
        Assert.False(IsRunning(harness.Marker), "the released app outlived the agent");
        Assert.False(Directory.Exists(harness.SecretsDir), "the secrets outlived the failed cold start");
        using var probe = new System.Net.Sockets.TcpClient();
        await Assert.ThrowsAnyAsync<System.Net.Sockets.SocketException>(() => probe.ConnectAsync("127.0.0.1", options.AppPort));
    }

    [Fact]
    public async Task EarlyApp_BundleWithEnvAndArgv_IsRestartedWithThem()
    {
        using var harness = new AgentHarness("early-env");
        await using var kms = await AgentKms.StartAsync(harness.SimDir);
        await kms.RegisterAsync("early-env", harness.Measurement);
        await kms.PutBundleAsync("early-env", new JsonObject
        {
            ["env"] = new JsonObject { ["GREETING"] = "from-env" },
            ["files"] = new JsonObject { ["greeting"] = "early-v1" },
            ["argv"] = new JsonArray("--from-bundle"),
        });
        var log = new LogSink();
        var agent = new Agent(harness.Options(kms.Server.BaseAddress!, kms.Pin, log) with { AppStart = AppStart.Early }, harness.LaunchConfig);
        using var stop = new CancellationTokenSource();
        var run = agent.RunAsync(stop.Token);
        await agent.Ready.WaitAsync(TimeSpan.FromSeconds(60));

        var body = await GetAsync(agent);
        Assert.Contains("env=from-env", body);
        Assert.Contains("--from-bundle", body);
        Assert.Contains("app_restart", log.Text);
        Assert.DoesNotContain("from-env", log.Text);

        await stop.CancelAsync();
        Assert.Equal(0, await run.WaitAsync(TimeSpan.FromSeconds(30)));
    }

    // No secret written, and the app — if it ran at all before it was stopped — never released, gone, its port closed.
    private static async Task AssertStoppedUnreleasedAsync(AgentHarness harness, AgentOptions options)
    {
        // The directory the early app was given (empty: nothing was provisioned) goes with the failed cold start.
        Assert.False(Directory.Exists(harness.SecretsDir));
        var marker = File.Exists(harness.Marker) ? await File.ReadAllTextAsync(harness.Marker) : "";
        Assert.DoesNotContain("released", marker.Replace("not-released", ""));
        Assert.False(IsRunning(harness.Marker), "the early app outlived the agent");
        using var probe = new System.Net.Sockets.TcpClient();
        await Assert.ThrowsAnyAsync<System.Net.Sockets.SocketException>(() => probe.ConnectAsync("127.0.0.1", options.AppPort));
    }

    // Whether a live process has this argument (the harness's marker path is unique to one test's app).
    private static bool IsRunning(string argument) =>
        Directory.EnumerateDirectories("/proc").Any(dir =>
        {
            try
            {
                return File.ReadAllText(Path.Combine(dir, "cmdline")).Split('\0').Contains(argument);
            }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException)
            {
                return false;
            }
        });

    // The certificate is the one the agent serves (its trust is AgentEndToEndTests' subject, not this one's).
    private static async Task<string> GetAsync(Agent agent)
    {
        var served = agent.Maintainer!.Current.Certificate.Certificate.RawData;
        using var handler = new SocketsHttpHandler
        {
            SslOptions = new SslClientAuthenticationOptions { RemoteCertificateValidationCallback = (_, cert, _, _) => cert is not null && cert.GetRawCertData().AsSpan().SequenceEqual(served) },
        };
        using var client = new HttpClient(handler);
        return await client.GetStringAsync($"https://localhost:{agent.Port}/");
    }
}
