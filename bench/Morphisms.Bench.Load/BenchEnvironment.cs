using System.Diagnostics;
using System.Globalization;
using System.Net;
using System.Net.Http.Json;
using System.Net.Sockets;
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

    private BenchEnvironment(string root, StreamWriter log, FunctionSpec spec)
    {
        _root = root;
        _log = log;
        BaseSpec = spec;
    }

    public string LogPath => Path.Combine(_root, "bench.log");

    public FunctionSpec BaseSpec { get; }

    public LocalStack Stack => _stack!;

    public ServingHost Host(Flavour flavour) => flavour == Flavour.Confidential ? _stack!.Serving : _plain!;

    public static async Task<BenchEnvironment> StartAsync(string signerDir, CancellationToken ct)
    {
        var spec = FunctionSpecLoader.Load(signerDir);
        if (!File.Exists(Path.Combine(spec.Bundle, "Signer.dll")))
        {
            throw new InvalidOperationException($"no signer bundle at {spec.Bundle}: run `bash samples/build.sh` first");
        }

        var root = Directory.CreateTempSubdirectory("morph-bench-").FullName;
        var log = new StreamWriter(Path.Combine(root, "bench.log")) { AutoFlush = true };
        var env = new BenchEnvironment(root, log, spec);
        var writer = TextWriter.Synchronized(log);
        env._stack = await LocalStack.StartAsync(new MorphPaths(Path.Combine(root, "data"), Path.Combine(root, "config")), writer, ct);
        env._plain = new ServingHost(new ServingHostOptions
        {
            Mode = GatewayMode.Http,
            DataDirectory = Path.Combine(root, "plain"),
            Log = writer,
        });
        await env._plain.StartAsync(ct);
        if (spec.Secrets is { } secrets)
        {
            await env.PutEmptyBundleAsync(secrets, ct);
        }

        return env;
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
        SocketsHttpHandler handler;
        if (flavour == Flavour.Confidential)
        {
            var trust = _stack!.Trust;
            handler = FunctionHttpHandler.Create(trust, new FunctionExpectation
            {
                Function = Function,
                Host = HostName(flavour),
                AllowSimulated = trust.Simulated,
            });
        }
        else
        {
            handler = new SocketsHttpHandler();
        }

        handler.ConnectCallback = async (_, token) =>
        {
            var socket = new Socket(gateway.AddressFamily, SocketType.Stream, ProtocolType.Tcp) { NoDelay = true };
            try
            {
                await socket.ConnectAsync(gateway, token);
                return new NetworkStream(socket, ownsSocket: true);
            }
            catch
            {
                socket.Dispose();
                throw;
            }
        };
        handler.PooledConnectionLifetime = TimeSpan.Zero;
        return new HttpClient(handler, disposeHandler: true) { Timeout = TimeSpan.FromMinutes(3) };
    }

    public string HostName(Flavour flavour) => $"{Function}.{Host(flavour).Options.Domain}";

    /// <summary>POST /sign with a fresh client; times the response headers (first byte) and the whole response.</summary>
    public async Task<Sample> SignAsync(Flavour flavour, CancellationToken ct)
    {
        using var http = Client(flavour);
        var scheme = flavour == Flavour.Confidential ? "https" : "http";
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
