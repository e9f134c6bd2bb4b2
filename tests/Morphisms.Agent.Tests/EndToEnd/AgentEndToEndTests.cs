using System.Net.Security;
using System.Security.Cryptography.X509Certificates;
using System.Text.Json.Nodes;

namespace Morphisms.Agent.Tests.EndToEnd;

/// <summary>
/// The whole agent against a real KMS (loopback TLS, simulated TEE trusted), with the test app as a real child
/// process and real TLS through the terminator.
/// </summary>
public sealed class AgentEndToEndTests
{
    private static JsonObject Bundle(string greeting) => new()
    {
        ["env"] = new JsonObject { ["GREETING"] = "hello-from-env" },
        ["files"] = new JsonObject { ["greeting"] = greeting, ["key.bin"] = new JsonObject { ["base64"] = Convert.ToBase64String([1, 2, 3]) } },
        ["argv"] = new JsonArray("--from-bundle"),
    };

    [Fact]
    public async Task ColdStart_AttestsProvisionsAndServesTheAppOverTls()
    {
        using var harness = new AgentHarness("greeter");
        await using var kms = await AgentKms.StartAsync(harness.SimDir);
        await kms.RegisterAsync("greeter", harness.Measurement);
        await kms.PutBundleAsync("greeter", Bundle("v1"));
        var log = new LogSink();
        using var reports = new ReportCollector();
        var reportToken = Convert.ToHexStringLower(System.Security.Cryptography.RandomNumberGenerator.GetBytes(32));
        var agent = new Agent(harness.Options(kms.Server.BaseAddress!, kms.Pin, log) with { ReportUrl = reports.Url, ReportToken = reportToken }, harness.LaunchConfig);
        using var stop = new CancellationTokenSource();
        var run = agent.RunAsync(stop.Token);
        await agent.Ready.WaitAsync(TimeSpan.FromSeconds(60));

        // The client trusts what the KMS issued; until the KMS PKI lands (empty data.certificate) the agent serves a
        // self-signed certificate for its attested key, and the client pins exactly that certificate instead.
        var served = agent.Maintainer!.Current.Certificate;
        var rootCa = X509Certificate2.CreateFromPem(await kms.RootCaPemAsync());
        using var client = Client((cert, chain) => served.Issued ? ChainsTo(cert, chain, rootCa) : cert.RawData.AsSpan().SequenceEqual(served.Certificate.RawData));
        var body = await client.GetStringAsync($"https://localhost:{agent.Port}/");
        Assert.Contains("greeting=v1", body);
        Assert.Contains("env=hello-from-env", body);
        Assert.Contains("--from-bundle", body);

        Assert.Equal(UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute, File.GetUnixFileMode(harness.SecretsDir));
        Assert.Equal(UnixFileMode.UserRead, File.GetUnixFileMode(Path.Combine(harness.SecretsDir, "greeting")));
        Assert.Equal(new byte[] { 1, 2, 3 }, File.ReadAllBytes(Path.Combine(harness.SecretsDir, "key.bin")));

        var phases = agent.ColdStart!["phases_ms"]!.AsObject();
        Assert.Equal(["launch", "pin", "keygen", "challenge", "evidence", "login", "certificate", "secrets", "app_ready", "terminator"], phases.Select(p => p.Key));
        Assert.Contains("\"event\":\"cold_start\"", log.Text);
        Assert.DoesNotContain("hello-from-env", log.Text);
        var posted = await reports.Received.WaitAsync(TimeSpan.FromSeconds(10));
        Assert.Equal("greeter", posted["function"]!.GetValue<string>());
        Assert.True(posted["phases_ms"]!["login"]!.GetValue<double>() > 0);
        Assert.Equal($"Bearer {reportToken}", reports.Authorization);
        Assert.DoesNotContain(reportToken, log.Text);

        await stop.CancelAsync();
        Assert.Equal(0, await run.WaitAsync(TimeSpan.FromSeconds(30)));
    }

    [Fact]
    public async Task LiveRotation_NewSecretsAndCertificateReachTheRunningAppWithoutRestart()
    {
        using var harness = new AgentHarness("rotor");
        await using var kms = await AgentKms.StartAsync(harness.SimDir);

        // A 2 s token that may live 4 s: renewal hits the max TTL quickly, forcing re-attestation and a new certificate.
        await kms.RegisterAsync("rotor", harness.Measurement, tokenTtl: "2s", tokenMaxTtl: "4s");
        await kms.PutBundleAsync("rotor", Bundle("v1"));
        var agent = new Agent(harness.Options(kms.Server.BaseAddress!, kms.Pin, new LogSink()), harness.LaunchConfig);
        using var stop = new CancellationTokenSource();
        var run = agent.RunAsync(stop.Token);
        await agent.Ready.WaitAsync(TimeSpan.FromSeconds(60));
        var url = $"https://localhost:{agent.Port}/";

        var seen = new List<byte[]>();
        var issued = agent.Maintainer!.Current.Certificate.Issued;
        var rootCa = X509Certificate2.CreateFromPem(await kms.RootCaPemAsync());
        bool Record(X509Certificate2 cert, X509Chain? chain)
        {
            lock (seen)
            {
                seen.Add(cert.RawData);
            }

            // KMS-issued certificates must chain to the KMS root; the pre-PKI stand-in is checked by name only.
            return issued ? ChainsTo(cert, chain, rootCa) : cert.Subject == "CN=rotor";
        }

        // One keep-alive client hammers the instance through both rotations; none of its requests may fail.
        using var steady = Client(Record);
        var first = await steady.GetStringAsync(url);
        var pid = Field(first, "pid");
        var failures = 0;
        var responses = new List<string>();
        using var load = new CancellationTokenSource();
        var hammer = Task.Run(async () =>
        {
            while (!load.IsCancellationRequested)
            {
                try
                {
                    var text = await steady.GetStringAsync(url);
                    lock (responses)
                    {
                        responses.Add(text);
                    }
                }
                catch (HttpRequestException)
                {
                    Interlocked.Increment(ref failures);
                }

                await Task.Delay(20);
            }
        });

        await kms.PutBundleAsync("rotor", Bundle("v2"));
        await Eventually.Until(() => { lock (responses) { return responses.Any(r => r.Contains("greeting=v2") && Field(r, "hups") == "1"); } }, "the app sees secret v2 after one SIGHUP");
        await Eventually.Until(() => agent.Maintainer!.Reattestations >= 1, "re-attestation before the token's max TTL");

        using var fresh = Client(Record);
        var after = await fresh.GetStringAsync(url);
        await load.CancelAsync();
        await hammer;

        Assert.Equal(0, failures);
        Assert.Equal(pid, Field(after, "pid"));
        Assert.Contains("greeting=v2", after);
        lock (seen)
        {
            Assert.False(seen[0].AsSpan().SequenceEqual(seen[^1]), "a new connection gets the rolled-over certificate");
        }

        await stop.CancelAsync();
        Assert.Equal(0, await run.WaitAsync(TimeSpan.FromSeconds(30)));
    }

    [Fact]
    public async Task Stop_RefusesNewConnectionsBeforeTheAppIsSignalled_WhileOpenOnesDrain()
    {
        using var harness = new AgentHarness("drainer");
        await using var kms = await AgentKms.StartAsync(harness.SimDir);
        await kms.RegisterAsync("drainer", harness.Measurement);
        await kms.PutBundleAsync("drainer", new JsonObject { ["files"] = new JsonObject { ["greeting"] = "v1" } });
        var options = harness.Options(kms.Server.BaseAddress!, kms.Pin, new LogSink());
        // The app drains for 4 s after SIGTERM: the checks below (a poll of the marker, a refused connect, a request on
        // the open connection) must fit in it on a loaded machine. The agent's drain timeout (AgentOptions' default
        // 10 s, not the harness's 5 s) stays well above it, so the app exits by itself (code 0) rather than being killed.
        var agent = new Agent(options with { App = [.. options.App, "--linger-ms", "4000"], DrainTimeout = TimeSpan.FromSeconds(10) }, harness.LaunchConfig);
        using var stop = new CancellationTokenSource();
        var run = agent.RunAsync(stop.Token);
        await agent.Ready.WaitAsync(TimeSpan.FromSeconds(60));
        var url = $"https://localhost:{agent.Port}/";
        using var open = Client((_, _) => true);
        Assert.Contains("greeting=v1", await open.GetStringAsync(url));

        await stop.CancelAsync();
        await Eventually.Until(() => File.ReadAllText(harness.Marker).Contains(";draining", StringComparison.Ordinal), "the app got SIGTERM");

        // While the app drains, a new client is refused at TCP (safe to retry elsewhere), not handshaken and then reset.
        using var late = new System.Net.Sockets.Socket(System.Net.Sockets.SocketType.Stream, System.Net.Sockets.ProtocolType.Tcp);
        var refused = await Assert.ThrowsAsync<System.Net.Sockets.SocketException>(() => late.ConnectAsync(System.Net.IPAddress.Loopback, agent.Port));
        Assert.Equal(System.Net.Sockets.SocketError.ConnectionRefused, refused.SocketErrorCode);

        // A connection opened before the stop is still served while the app drains.
        Assert.Contains("greeting=v1", await open.GetStringAsync(url));
        Assert.False(run.IsCompleted);
        Assert.Equal(0, await run.WaitAsync(TimeSpan.FromSeconds(30)));
    }

    [Fact]
    public async Task ABundleWithArgv_IsWarnedAbout_ByCountNeverByValue()
    {
        using var harness = new AgentHarness("argver");
        await using var kms = await AgentKms.StartAsync(harness.SimDir);
        await kms.RegisterAsync("argver", harness.Measurement);
        await kms.PutBundleAsync("argver", new JsonObject
        {
            ["files"] = new JsonObject { ["greeting"] = "v1" },
            ["argv"] = new JsonArray("--api-key", "argv-value-7f3c"),
        });
        var log = new LogSink();
        var agent = new Agent(harness.Options(kms.Server.BaseAddress!, kms.Pin, log), harness.LaunchConfig);
        using var stop = new CancellationTokenSource();
        var run = agent.RunAsync(stop.Token);
        await agent.Ready.WaitAsync(TimeSpan.FromSeconds(60));

        // The app still gets them; /proc/PID/cmdline shows them to every local user, so the operator is told, by count.
        using var client = Client((_, _) => true);
        Assert.Contains("argv-value-7f3c", await client.GetStringAsync($"https://localhost:{agent.Port}/"));
        var warning = log.Text.Split('\n').Single(l => l.Contains("\"event\":\"bundle_argv_visible\"", StringComparison.Ordinal));
        Assert.Equal(2, JsonNode.Parse(warning)!["argv_count"]!.GetValue<int>());
        Assert.Contains("/proc/PID/cmdline", warning);

        await stop.CancelAsync();
        Assert.Equal(0, await run.WaitAsync(TimeSpan.FromSeconds(30)));
        Assert.DoesNotContain("argv-value-7f3c", log.Text);
        Assert.DoesNotContain("--api-key", log.Text);
    }

    /// <summary>
    /// The terminator listens from just after attestation, before the app's readiness check has looked at who listens on
    /// the app's port. A process that took that port first must get nothing: a client whose handshake completes in that
    /// window is held, and closed unforwarded when the check fails.
    /// </summary>
    [Fact]
    public async Task AProcessSquattingOnTheAppsPort_IsNeverSentARequest_EvenOneThatArrivesBeforeTheReadinessCheck()
    {
        using var harness = new AgentHarness("squatted");
        await using var kms = await AgentKms.StartAsync(harness.SimDir);
        await kms.RegisterAsync("squatted", harness.Measurement);
        await kms.PutBundleAsync("squatted", new JsonObject { ["files"] = new JsonObject { ["greeting"] = "v1" } });

        // The squatter takes the app's port and reads whatever comes, answering nothing, so the readiness check keeps
        // probing until its timeout; the app itself never listens.
        using var squatter = new System.Net.Sockets.TcpListener(System.Net.IPAddress.Loopback, 0);
        squatter.Start();
        var received = new System.Collections.Concurrent.ConcurrentQueue<string>();
        using var squatting = new CancellationTokenSource();
        var reading = Task.Run(async () =>
        {
            while (!squatting.IsCancellationRequested)
            {
                var connection = await squatter.AcceptTcpClientAsync(squatting.Token);
                _ = Task.Run(async () =>
                {
                    using var _ = connection;
                    var buffer = new byte[4096];
                    int read;
                    while ((read = await connection.GetStream().ReadAsync(buffer, squatting.Token)) > 0)
                    {
                        received.Enqueue(System.Text.Encoding.ASCII.GetString(buffer, 0, read));
                    }
                });
            }
        });

        var options = harness.Options(kms.Server.BaseAddress!, kms.Pin, new LogSink()) with
        {
            App = ["sleep", "60"],
            AppPort = ((System.Net.IPEndPoint)squatter.LocalEndpoint).Port,
            Port = TestProcesses.FreePort(),
            AppReadyTimeout = TimeSpan.FromSeconds(6),
        };
        var agent = new Agent(options, harness.LaunchConfig);
        var run = agent.RunAsync(CancellationToken.None);

        // As soon as the terminator listens (after attestation), a client completes a handshake and sends a request.
        using var client = new System.Net.Sockets.TcpClient();
        await Eventually.Until(() =>
        {
            try
            {
                client.Connect(System.Net.IPAddress.Loopback, options.Port);
                return true;
            }
            catch (System.Net.Sockets.SocketException)
            {
                return false;
            }
        }, "the terminator listening", TimeSpan.FromSeconds(60));
        await using var tls = new SslStream(client.GetStream());
        await tls.AuthenticateAsClientAsync(new SslClientAuthenticationOptions { TargetHost = "squatted", RemoteCertificateValidationCallback = (_, _, _, _) => true });
        Assert.False(run.IsCompleted, "the agent gave up before the request was sent: the test proves nothing");
        await tls.WriteAsync("GET /private-request-7c1e HTTP/1.1\r\nHost: squatted\r\n\r\n"u8.ToArray());

        Assert.Equal(AgentExitCodes.AppNotReady, await run.WaitAsync(TimeSpan.FromSeconds(60)));
        var end = await Record.ExceptionAsync(async () => Assert.Equal(0, await tls.ReadAsync(new byte[1]).AsTask().WaitAsync(TimeSpan.FromSeconds(10))));
        Assert.True(end is null or IOException, $"the held connection is closed unanswered ({end})");
        await Task.Delay(300);
        Assert.DoesNotContain(received, text => text.Contains("private-request-7c1e", StringComparison.Ordinal));
        Assert.False(Directory.Exists(harness.SecretsDir));

        await squatting.CancelAsync();
        await Record.ExceptionAsync(() => reading);
    }

    private static string Field(string body, string name) =>
        body.Split(';').Select(p => p.Split('=', 2)).First(p => p[0] == name)[1];


    /// <summary>What a Morphisms client does: the served chain must end at the KMS root CA it pinned.</summary>
    private static bool ChainsTo(X509Certificate2 leaf, X509Chain? presented, X509Certificate2 root)
    {
        using var chain = new X509Chain();
        chain.ChainPolicy.TrustMode = X509ChainTrustMode.CustomRootTrust;
        chain.ChainPolicy.CustomTrustStore.Add(root);
        chain.ChainPolicy.RevocationMode = X509RevocationMode.NoCheck;
        if (presented is not null)
        {
            chain.ChainPolicy.ExtraStore.AddRange(presented.ChainPolicy.ExtraStore);
            foreach (var element in presented.ChainElements)
            {
                chain.ChainPolicy.ExtraStore.Add(element.Certificate);
            }
        }

        return chain.Build(leaf);
    }

    private static HttpClient Client(Func<X509Certificate2, X509Chain?, bool> trust)
    {
        var handler = new SocketsHttpHandler { PooledConnectionLifetime = Timeout.InfiniteTimeSpan };
        handler.SslOptions = new SslClientAuthenticationOptions
        {
            RemoteCertificateValidationCallback = (_, cert, chain, _) => cert is X509Certificate2 c && trust(c, chain),
        };
        return new HttpClient(handler) { Timeout = TimeSpan.FromSeconds(10) };
    }
}
