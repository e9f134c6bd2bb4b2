using System.Diagnostics;
using System.Globalization;
using System.Net;
using System.Net.Http.Json;
using System.Net.Security;
using System.Net.Sockets;
using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;
using System.Text.Json.Nodes;
using System.Text.RegularExpressions;
using Morphisms.Cli.Commands.Up;
using Morphisms.Cli.Paths;
using Morphisms.Client.Functions;
using Morphisms.Serving.Hosting;
using Morphisms.Serving.Spec;

namespace Morphisms.Bench.Load;

/// <summary>How the signer is deployed.</summary>
internal enum Flavour
{
    /// <summary><c>tee: sim</c> on the confidential host: morph-init attests, fetches secrets and a certificate, TLS ends in the instance.</summary>
    Confidential,

    /// <summary><c>tee: none</c> on an HTTP-mode host: the signer process alone, plain HTTP through the YARP gateway.</summary>
    Plain,

    /// <summary>
    /// <c>tee: none</c> on an HTTP-mode host that serves HTTPS (<c>--plain-https</c>): TLS ends at the gateway, as at the
    /// ingress of an ordinary deployment, and every caller validates the gateway's certificate against its CA.
    /// </summary>
    PlainHttps,
}

/// <summary>One request's outcome: time to the response headers (first byte), to the end of the body, and the status.</summary>
internal sealed record Sample(double FirstByteMs, double TotalMs, int Status, string? Error);

/// <summary>
/// The bench's world: <c>morph up</c>'s LocalStack (dev KMS, simulated TEE, confidential SNI gateway) in a fresh
/// temporary data directory, plus a second ServingHost in HTTP mode for the <c>tee: none</c> baseline. Both run the
/// real runtime: morph-init and the signer are real child processes.
/// </summary>
internal sealed partial class BenchEnvironment : IAsyncDisposable
{
    public const string Function = "signer";
    private static readonly byte[] Message = "benchmark message"u8.ToArray();

    private readonly string _root;
    private readonly StreamWriter _log;
    private LocalStack? _stack;
    private ServingHost? _plain;
    private ServingHost? _plainHttps;
    private X509Certificate2? _plainHttpsCa;

    private BenchEnvironment(string root, StreamWriter log, FunctionSpec spec)
    {
        _root = root;
        _log = log;
        BaseSpec = spec;
    }

    public string LogPath => Path.Combine(_root, "bench.log");

    public FunctionSpec BaseSpec { get; }

    public LocalStack Stack => _stack!;

    public ServingHost Host(Flavour flavour) => flavour switch
    {
        Flavour.Confidential => _stack!.Serving,
        Flavour.Plain => _plain!,
        _ => _plainHttps ?? throw new InvalidOperationException("the plain-https baseline runs only with --plain-https"),
    };

    /// <summary>The flavours this run compares: confidential and plain, and plain-https with <c>--plain-https</c>.</summary>
    public Flavour[] Flavours => _plainHttps is null ? [Flavour.Confidential, Flavour.Plain] : [Flavour.Confidential, Flavour.Plain, Flavour.PlainHttps];

    /// <summary>How instances are built and started in this run (recorded with every result).</summary>
    public JsonObject Setup { get; private set; } = [];

    /// <summary>
    /// Starts the world. <paramref name="options"/>: <c>--app aot|r2r</c> (the signer build both flavours run;
    /// default aot: <c>MORPH_NATIVE_AOT=1 bash samples/build.sh</c>), <c>--app-start early|after-secrets</c> (default:
    /// the signer's function.yaml, which says after-secrets), <c>--morph-init aot|r2r|jit|PATH</c> (default r2r; aot
    /// and r2r are published here, incrementally; <c>$MORPH_INIT</c> wins when set).
    /// </summary>
    public static async Task<BenchEnvironment> StartAsync(string signerDir, Options options, CancellationToken ct)
    {
        var spec = FunctionSpecLoader.Load(signerDir);
        var app = options.Get("app") ?? "aot";
        spec = app switch
        {
            // The NativeAOT build is a single executable; the function.yaml's `dotnet Signer.dll` is the portable default.
            "aot" => spec with { Bundle = Path.Combine(Path.GetDirectoryName(spec.Bundle)!, "publish-aot"), Command = ["./Signer"] },
            "r2r" => spec,
            _ => throw new ArgumentException($"--app must be aot or r2r, not {app}"),
        };
        var appFile = Path.Combine(spec.Bundle, app == "aot" ? "Signer" : "Signer.dll");
        if (!File.Exists(appFile))
        {
            throw new InvalidOperationException($"no signer bundle at {appFile}: run `{(app == "aot" ? "MORPH_NATIVE_AOT=1 " : "")}bash samples/build.sh` first (or pass --app {(app == "aot" ? "r2r" : "aot")})");
        }

        var appStart = options.Get("app-start") ?? spec.Env.GetValueOrDefault("MORPH_APP_START") ?? "after-secrets";
        if (appStart is not ("early" or "after-secrets"))
        {
            throw new ArgumentException($"--app-start must be early or after-secrets, not {appStart}");
        }

        spec = spec with { Env = new Dictionary<string, string>(spec.Env) { ["MORPH_APP_START"] = appStart } };
        var morphInit = Environment.GetEnvironmentVariable(Morphisms.Serving.Runtime.ProcessInstanceLauncher.MorphInitVariable) is { Length: > 0 } fromEnv
            ? fromEnv
            : await MorphInitAsync(options.Get("morph-init") ?? "r2r", ct);
        if (morphInit is not null)
        {
            // ServingHost's launcher reads it when it starts (LocalStack has no option for it).
            Environment.SetEnvironmentVariable(Morphisms.Serving.Runtime.ProcessInstanceLauncher.MorphInitVariable, morphInit);
        }

        var root = Directory.CreateTempSubdirectory("morph-bench-").FullName;
        var log = new StreamWriter(Path.Combine(root, "bench.log")) { AutoFlush = true };
        var env = new BenchEnvironment(root, log, spec);
        env.Setup = new JsonObject
        {
            ["app"] = app == "aot" ? "signer NativeAOT (publish-aot/Signer)" : "signer framework-dependent ReadyToRun (dotnet Signer.dll)",
            ["app_start"] = appStart,
            ["morph_init"] = morphInit ?? "dotnet morph-init.dll (build output, JIT)",
        };
        Console.WriteLine($"# setup: app {env.Setup["app"]}; app start {appStart}; morph-init {env.Setup["morph_init"]}");
        var writer = TextWriter.Synchronized(log);
        env._stack = await LocalStack.StartAsync(new MorphPaths(Path.Combine(root, "data"), Path.Combine(root, "config")), writer, ct);
        env._plain = new ServingHost(new ServingHostOptions
        {
            Mode = GatewayMode.Http,
            DataDirectory = Path.Combine(root, "plain"),
            Log = writer,
        });
        await env._plain.StartAsync(ct);
        if (options.Get("plain-https") is "true")
        {
            await env.StartPlainHttpsAsync(writer, ct);
        }

        env.Setup["plain_https"] = env._plainHttps is not null;
        if (spec.Secrets is { } secrets)
        {
            await env.PutEmptyBundleAsync(secrets, ct);
        }

        return env;
    }

    // An ordinary deployment's HTTPS: a P-256 CA (as an operator's or a public CA's ECDSA issuer would be) and a leaf for
    // the function's name at the HTTP-mode gateway; callers trust the CA and build the chain on every handshake, as any
    // HTTPS client does.
    private async Task StartPlainHttpsAsync(TextWriter log, CancellationToken ct)
    {
        const string domain = "plain.morphisms.local";
        var now = DateTimeOffset.UtcNow;
        using var caKey = ECDsa.Create(ECCurve.NamedCurves.nistP256);
        var caRequest = new CertificateRequest("CN=bench ingress CA", caKey, HashAlgorithmName.SHA256);
        caRequest.CertificateExtensions.Add(new X509BasicConstraintsExtension(true, false, 0, true));
        caRequest.CertificateExtensions.Add(new X509KeyUsageExtension(X509KeyUsageFlags.KeyCertSign | X509KeyUsageFlags.CrlSign, true));
        using var ca = caRequest.CreateSelfSigned(now.AddMinutes(-5), now.AddDays(1));
        _plainHttpsCa = X509CertificateLoader.LoadCertificate(ca.RawData);

        using var leafKey = ECDsa.Create(ECCurve.NamedCurves.nistP256);
        var leafRequest = new CertificateRequest($"CN={Function}.{domain}", leafKey, HashAlgorithmName.SHA256);
        var names = new SubjectAlternativeNameBuilder();
        names.AddDnsName($"{Function}.{domain}");
        leafRequest.CertificateExtensions.Add(names.Build());
        leafRequest.CertificateExtensions.Add(new X509EnhancedKeyUsageExtension([new Oid("1.3.6.1.5.5.7.3.1")], false));
        using var leaf = leafRequest.Create(ca, now.AddMinutes(-5), now.AddDays(1), RandomNumberGenerator.GetBytes(16));
        var served = leaf.CopyWithPrivateKey(leafKey);

        _plainHttps = new ServingHost(new ServingHostOptions
        {
            Mode = GatewayMode.Http,
            Domain = domain,
            HttpGatewayCertificate = served,
            DataDirectory = Path.Combine(_root, "plain-https"),
            Log = log,
        });
        await _plainHttps.StartAsync(ct);
    }

    // aot/r2r: `dotnet publish` NativeAOT/ReadyToRun into a per-user, per-checkout temp directory (incremental); jit: the
    // build output beside this harness (null); anything else is a path to a published morph-init.
    private static async Task<string?> MorphInitAsync(string choice, CancellationToken ct)
    {
        if (choice == "jit")
        {
            return null;
        }

        if (choice is not ("r2r" or "aot"))
        {
            return Path.GetFullPath(choice);
        }

        var project = Path.Combine(Program.RepositoryRoot(), "src", "Morphisms.Agent", "Morphisms.Agent.csproj");
        // One directory per checkout: an A/B between two worktrees must not run one's agent for the other.
        var checkout = Convert.ToHexStringLower(System.Security.Cryptography.SHA256.HashData(System.Text.Encoding.UTF8.GetBytes(Program.RepositoryRoot())))[..8];
        var output = Path.Combine(Path.GetTempPath(), $"morph-bench-morph-init-{choice}-{Environment.UserName}-{checkout}");
        Console.WriteLine($"# publishing morph-init {(choice == "aot" ? "NativeAOT (minutes the first time)" : "ReadyToRun")} to {output}");
        var info = new ProcessStartInfo("dotnet") { RedirectStandardOutput = true, RedirectStandardError = true };
        string[] build = choice == "aot"
            ? ["-p:PublishAot=true"]
            : ["--self-contained", "false", "-p:PublishReadyToRun=true"];
        string[] args =
        [
            "publish", project, "-c", "Release", "-r", "linux-x64", .. build,
            "-o", Path.Combine(output, "publish"), "--artifacts-path", Path.Combine(output, "artifacts"), "-nologo", "-v", "q",
        ];
        foreach (var arg in args)
        {
            info.ArgumentList.Add(arg);
        }

        using var publish = Process.Start(info)!;
        var stdout = publish.StandardOutput.ReadToEndAsync(ct);
        var stderr = publish.StandardError.ReadToEndAsync(ct);
        await publish.WaitForExitAsync(ct);
        if (publish.ExitCode != 0)
        {
            throw new InvalidOperationException($"publishing morph-init failed ({publish.ExitCode}):\n{await stdout}\n{await stderr}");
        }

        return Path.Combine(output, "publish", choice == "aot" ? "morph-init" : "morph-init.dll");
    }

    /// <summary>The agent's own cold-start phases (ms) from its latest <c>cold_start</c> log line, or null.</summary>
    public (Dictionary<string, double> Phases, double TotalMs)? AgentReport(Flavour flavour)
    {
        var lines = Host(flavour).Logs(Function, 400);

        // Into bench.log too: the instance's own lines (agent events, app output) explain an outlier.
        foreach (var (source, line) in lines)
        {
            _log.WriteLine($"{line.Time:O} instance {source} {line.Stream}: {line.Text}");
        }

        foreach (var (_, line) in lines.Reverse())
        {
            if (!line.Text.Contains("\"event\":\"cold_start\"", StringComparison.Ordinal) || ParseOrNull(line.Text) is not JsonObject report)
            {
                continue;
            }

            var phases = new Dictionary<string, double>(StringComparer.Ordinal);
            foreach (var (name, value) in report["phases_ms"]?.AsObject() ?? [])
            {
                phases[name] = value!.GetValue<double>();
            }

            return (phases, report["total_ms"]!.GetValue<double>());
        }

        return null;
    }

    // A line cut by another process's output on the same pipe is skipped (and stays in bench.log), not fatal.
    private static JsonNode? ParseOrNull(string text)
    {
        try
        {
            return JsonNode.Parse(text);
        }
        catch (System.Text.Json.JsonException)
        {
            return null;
        }
    }

    /// <summary>The signer as <paramref name="flavour"/>, starting from zero instances (initial 0).</summary>
    public FunctionSpec Spec(Flavour flavour) => flavour == Flavour.Confidential
        ? BaseSpec with { Tee = FunctionTee.Sim, Scale = BaseSpec.Scale with { Initial = 0, Min = 0 } }
        : BaseSpec with { Tee = FunctionTee.None, Secrets = null, Scale = BaseSpec.Scale with { Initial = 0, Min = 0 } };

    /// <summary>Deploys from zero and checks that no instance is ready (the next request is a cold start).</summary>
    public async Task DeployFromZeroAsync(Flavour flavour, CancellationToken ct)
    {
        var host = Host(flavour);
        await host.DeployAsync(Spec(flavour), ct);
        var status = host.List().Single(f => f.Name == Function);
        if (status.Traffic.Sum(t => t.Ready + t.Standby) != 0)
        {
            throw new InvalidOperationException($"{flavour}: instances already ready after deploy; not a cold start");
        }
    }

    /// <summary>Removes the function: its instances are drained, so the next deploy starts from zero.</summary>
    public Task RemoveAsync(Flavour flavour, CancellationToken ct) => Host(flavour).RemoveAsync(Function, ct);

    /// <summary>A client as a fresh caller would have: its own connection; confidential ones verify the attested certificate.</summary>
    public HttpClient Client(Flavour flavour)
    {
        var gateway = Host(flavour).GatewayEndPoint;
        var connectToGateway = FunctionHttpHandler.ConnectTo(gateway);

        SocketsHttpHandler handler;
        if (flavour == Flavour.Confidential)
        {
            // Given to Create, not set on the handler: set there it would replace the CRL warm-up users get before connecting.
            var trust = _stack!.Trust;
            handler = FunctionHttpHandler.Create(trust, new FunctionExpectation
            {
                Function = Function,
                Host = HostName(flavour),
                AllowSimulated = trust.Simulated,
            }, connect: connectToGateway);
        }
        else if (flavour == Flavour.PlainHttps)
        {
            var policy = new X509ChainPolicy
            {
                TrustMode = X509ChainTrustMode.CustomRootTrust,
                RevocationMode = X509RevocationMode.NoCheck,
                DisableCertificateDownloads = true,
            };
            policy.CustomTrustStore.Add(_plainHttpsCa!);
            handler = new SocketsHttpHandler { SslOptions = new SslClientAuthenticationOptions { CertificateChainPolicy = policy } };
        }
        else
        {
            // The plain baseline: tee none over plain HTTP, NOT attested, so a plain handler on purpose (FunctionHttpHandler
            // refuses a request that is not https); only the gateway connect is borrowed.
            handler = new SocketsHttpHandler();
        }

        handler.ConnectCallback ??= connectToGateway;
        handler.PooledConnectionLifetime = TimeSpan.Zero;
        return new HttpClient(handler, disposeHandler: true) { Timeout = TimeSpan.FromMinutes(3) };
    }

    public string HostName(Flavour flavour) => $"{Function}.{Host(flavour).Options.Domain}";

    /// <summary>POST /sign with a fresh client; times the response headers (first byte) and the whole response.</summary>
    public async Task<Sample> SignAsync(Flavour flavour, CancellationToken ct)
    {
        using var http = Client(flavour);
        var scheme = flavour == Flavour.Plain ? "http" : "https";
        using var request = new HttpRequestMessage(HttpMethod.Post, $"{scheme}://{HostName(flavour)}/sign") { Content = new ByteArrayContent(Message) };
        var start = Stopwatch.GetTimestamp();
        try
        {
            using var response = await http.SendAsync(request, HttpCompletionOption.ResponseHeadersRead, ct);
            var firstByte = Stats.Ms(start);
            await response.Content.ReadAsByteArrayAsync(ct);
            return new Sample(firstByte, Stats.Ms(start), (int)response.StatusCode, response.IsSuccessStatusCode ? null : response.ReasonPhrase);
        }
        catch (Exception e) when (e is HttpRequestException or TaskCanceledException && !ct.IsCancellationRequested)
        {
            var ms = Stats.Ms(start);
            return new Sample(ms, ms, 0, e.GetBaseException().Message);
        }
    }

    /// <summary>Cold-start phase histograms' running sums and counts (ms) for the signer, by phase.</summary>
    public Dictionary<string, (double SumMs, long Count)> PhaseTotals(Flavour flavour)
    {
        var totals = new Dictionary<string, (double SumMs, long Count)>(StringComparer.Ordinal);
        foreach (Match m in PhaseLine().Matches(Host(flavour).Metrics.Render()))
        {
            if (m.Groups["fn"].Value != Function)
            {
                continue;
            }

            var phase = m.Groups["phase"].Value;
            var value = double.Parse(m.Groups["v"].Value, CultureInfo.InvariantCulture);
            var (sum, count) = totals.GetValueOrDefault(phase);
            totals[phase] = m.Groups["kind"].Value == "sum" ? (sum + (value * 1000), count) : (sum, count + (long)value);
        }

        return totals;
    }

    private async Task PutEmptyBundleAsync(string secretPath, CancellationToken ct)
    {
        var kms = _stack!.Kms;
        var certificate = kms.TlsCertificate!.RawData;
        using var handler = new SocketsHttpHandler();
        handler.SslOptions.RemoteCertificateValidationCallback = (_, presented, _, _) => presented is not null && presented.GetRawCertData().AsSpan().SequenceEqual(certificate);
        using var http = new HttpClient(handler) { BaseAddress = kms.BaseAddress };
        http.DefaultRequestHeaders.Add("X-Vault-Token", kms.DevCredentials!.RootToken);
        using var response = await http.PostAsync($"v1/{secretPath}", JsonContent.Create(new JsonObject { ["data"] = new JsonObject { ["files"] = new JsonObject() } }), ct);
        response.EnsureSuccessStatusCode();
    }

    [GeneratedRegex(@"^morph_cold_start_phase_seconds_(?<kind>sum|count)\{function=""(?<fn>[^""]*)"",revision=""[^""]*"",phase=""(?<phase>[^""]*)""\} (?<v>\S+)$", RegexOptions.Multiline)]
    private static partial Regex PhaseLine();

    public async ValueTask DisposeAsync()
    {
        if (_plainHttps is not null)
        {
            await _plainHttps.DisposeAsync();
        }

        _plainHttpsCa?.Dispose();
        if (_plain is not null)
        {
            await _plain.DisposeAsync();
        }

        if (_stack is not null)
        {
            await _stack.DisposeAsync();
        }

        await _log.DisposeAsync();
        try
        {
            Directory.Delete(Path.Combine(_root, "data"), recursive: true);
        }
        catch (IOException)
        {
            // best effort; the log stays for inspection
        }
    }
}
