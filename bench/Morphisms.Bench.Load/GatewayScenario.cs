using System.Buffers.Binary;
using System.Diagnostics;
using System.Globalization;
using System.Net;
using System.Net.Security;
using System.Net.Sockets;
using System.Security.Cryptography;
using System.Text.Json.Nodes;
using Morphisms.Serving.Spec;

namespace Morphisms.Bench.Load;

/// <summary>
/// Scenario 3, warm gateway: one warm confidential signer instance (min = max = initial = 1, so no scaling and no
/// scale-to-zero during the run) reached three ways with the same client and the same load — through the SNI
/// passthrough gateway, directly on the instance's TLS port, and through nginx <c>stream</c> + <c>ssl_preread</c> —
/// keep-alive and one-connection-per-request, at fixed concurrency levels, duration-based. The paths alternate
/// inside every round (and their order rotates between rounds) so machine noise hits all three alike.
/// </summary>
internal static class GatewayScenario
{
    internal enum PathKind
    {
        Gateway,
        Direct,
        Nginx,
    }

    public static async Task<JsonObject> RunAsync(BenchEnvironment env, Options options, CancellationToken ct)
    {
        var seconds = options.Int("seconds", 5);
        var warmup = double.Parse(options.Get("warmup") ?? "1.5", CultureInfo.InvariantCulture);
        var rounds = options.Int("rounds", 3);
        var levels = options.Ints("concurrency", [1, 16, 64]);
        var modes = (options.Get("modes") ?? "keepalive,close").Split(',');
        var requests = (options.Get("requests") ?? "sign").Split(',').Select(r => Enum.Parse<GatewayRequest>(r, ignoreCase: true)).ToArray();

        var host = env.Stack.Serving;
        var spec = env.BaseSpec with { Tee = FunctionTee.Sim, Scale = env.BaseSpec.Scale with { Min = 1, Max = 1, Initial = 1 } };
        var deployed = await host.DeployAsync(spec, ct);
        var name = env.HostName(Flavour.Confidential);
        var gateway = host.GatewayEndPoint;
        await using var target = new GatewayWarmTarget(env, deployed.Revision, name);
        await target.EnsureAsync(ct);
        var instance = target.Instance;
        var nginx = target.Nginx;
        Console.WriteLine($"# instance {instance} (revision {deployed.Revision}), gateway {gateway}, nginx {nginx.EndPoint} ({nginx.Version})");
        Console.WriteLine($"# {rounds} rounds x {requests.Length} request kinds x {modes.Length} modes x {levels.Length} levels x 3 paths, {seconds}s each after {warmup}s warm-up");

        var work = Path.Combine(Path.GetTempPath(), "morph-bench-gateway-" + Environment.ProcessId);
        Directory.CreateDirectory(work);
        var trials = new JsonArray();
        var replaced = new JsonArray();
        var cells = new Dictionary<(GatewayRequest Request, string Mode, int Concurrency, PathKind Path), Cell>();
        var paths = Enum.GetValues<PathKind>();
        try
        {
            // Unrecorded: the instance (agent terminator, Kestrel, signer), the gateway and nginx reach steady state
            // (tiered JIT, pools, TLS caches) before the first recorded trial, so round 1's first path is not penalised.
            foreach (var request in requests)
            {
                foreach (var mode in modes)
                {
                    foreach (var path in paths)
                    {
                        await target.EnsureAsync(ct);
                        await RunTrialAsync(new TrialSpec(gateway, target.EndPoint(path, gateway), name, target.Pin, levels.Max(), mode, request, 2, 1, work), null, ct);
                    }
                }
            }

            // The bench process also hosts the KMS and the serving host's loops: their idle CPU is not the gateway's.
            var idleFrom = Process.GetCurrentProcess().TotalProcessorTime;
            await Task.Delay(TimeSpan.FromSeconds(3), ct);
            GatewayIdleCpuPerSecond = (Process.GetCurrentProcess().TotalProcessorTime - idleFrom).TotalSeconds / 3;
            Console.WriteLine(string.Create(CultureInfo.InvariantCulture, $"# bench process idle CPU: {GatewayIdleCpuPerSecond * 1000:0.0} ms/s (subtracted from the gateway's CPU per request)"));

            for (var round = 0; round < rounds; round++)
            {
                foreach (var request in requests)
                {
                    foreach (var mode in modes)
                    {
                        foreach (var concurrency in levels)
                        {
                            var order = Enumerable.Range(0, paths.Length).Select(i => paths[(i + round) % paths.Length]).ToArray();
                            foreach (var path in order)
                            {
                                Trial trial;
                                while (true)
                                {
                                    await target.EnsureAsync(ct);
                                    var before = target.Generation;
                                    trial = await RunTrialAsync(new TrialSpec(gateway, target.EndPoint(path, gateway), name, target.Pin, concurrency, mode, request, seconds, warmup, work), path switch
                                    {
                                        PathKind.Gateway => () => Process.GetCurrentProcess().TotalProcessorTime,
                                        PathKind.Nginx => () => target.Nginx.CpuTime,
                                        _ => null,
                                    }, ct, () => ProcessCpu.OfChildren(Environment.ProcessId, new HashSet<int> { target.Nginx.ProcessId }));
                                    await target.EnsureAsync(ct);
                                    if (target.Generation == before)
                                    {
                                        break;
                                    }

                                    // The instance was replaced during the trial (its failures are not the path's): run it again.
                                    replaced.Add($"round {round + 1} {request} {mode} c={concurrency} {path}: instance replaced, trial repeated");
                                    Console.WriteLine($"  instance replaced during the trial (see {env.LogPath}); repeating it");
                                }

                                var cell = cells.TryGetValue((request, mode, concurrency, path), out var c) ? c : cells[(request, mode, concurrency, path)] = new Cell();
                                cell.Add(round, trial);
                                trials.Add(new JsonObject
                                {
                                    ["round"] = round,
                                    ["request"] = request.ToString().ToLowerInvariant(),
                                    ["mode"] = mode,
                                    ["concurrency"] = concurrency,
                                    ["path"] = path.ToString().ToLowerInvariant(),
                                    ["rps"] = Stats.Round(trial.Rps),
                                    ["p50_ms"] = Stats.Round(Stats.Percentile(trial.LatencyMs, 50)),
                                    ["p99_ms"] = Stats.Round(Stats.Percentile(trial.LatencyMs, 99)),
                                    ["errors"] = trial.Errors,
                                    ["first_error"] = trial.FirstError,
                                    ["proxy_cpu_us_per_request"] = trial.ProxyCpuUsPerRequest is { } cpu ? Math.Round(cpu, 1) : null,
                                    ["instance_cpu_us_per_request"] = trial.InstanceCpuUsPerRequest is { } icpu ? Math.Round(icpu, 1) : null,
                                    ["client_cpu_us_per_request"] = Stats.Round(trial.ClientCpuUsPerRequest),
                                    ["loadavg"] = trial.LoadAverage,
                                });
                                Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
                                    $"  round {round + 1} {request,-7} {mode,-9} c={concurrency,-3} {path,-7} {trial.Rps,9:0} req/s  p50 {Stats.Percentile(trial.LatencyMs, 50),7:0.000} ms  p99 {Stats.Percentile(trial.LatencyMs, 99),7:0.000} ms  errors {trial.Errors}  load {trial.LoadAverage}"));
                            }
                        }
                    }
                }
            }
        }
        finally
        {
            Directory.Delete(work, recursive: true);
            await host.RemoveAsync(BenchEnvironment.Function, CancellationToken.None);
        }

        var table = new JsonArray();
        Console.WriteLine();
        Console.WriteLine("request  mode       c  | gateway req/s  p50    p99  | direct req/s  p50    p99  | nginx req/s  p50    p99  | gw/direct gw/nginx | +p99 vs direct  vs nginx (ms) | proxy CPU us/req gw  nginx");
        foreach (var request in requests)
        {
            foreach (var mode in modes)
            {
                foreach (var concurrency in levels)
                {
                    var g = cells[(request, mode, concurrency, PathKind.Gateway)];
                    var d = cells[(request, mode, concurrency, PathKind.Direct)];
                    var n = cells[(request, mode, concurrency, PathKind.Nginx)];
                    // Ratios per round (the three paths ran back to back), then the median over rounds.
                    var vsDirect = Median(g.RpsByRound.Zip(d.RpsByRound, (a, b) => a / b));
                    var vsNginx = Median(g.RpsByRound.Zip(n.RpsByRound, (a, b) => a / b));
                    var addedDirect = g.P(99) - d.P(99);
                    var addedNginx = g.P(99) - n.P(99);
                    Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
                        $"{request,-8} {mode,-9} {concurrency,3} | {g.MedianRps,9:0} {g.P(50),6:0.00} {g.P(99),6:0.00} | {d.MedianRps,9:0} {d.P(50),6:0.00} {d.P(99),6:0.00} | {n.MedianRps,9:0} {n.P(50),6:0.00} {n.P(99),6:0.00} | {vsDirect,7:P0} {vsNginx,8:P0} | {addedDirect,+9:0.00} {addedNginx,+13:0.00} | {g.MedianCpu,10:0.0} {n.MedianCpu,6:0.0}"));
                    table.Add(new JsonObject
                    {
                        ["request"] = request.ToString().ToLowerInvariant(),
                        ["mode"] = mode,
                        ["concurrency"] = concurrency,
                        ["gateway"] = g.ToJson(),
                        ["direct"] = d.ToJson(),
                        ["nginx"] = n.ToJson(),
                        ["gateway_vs_direct_throughput"] = Stats.Round(vsDirect),
                        ["gateway_vs_nginx_throughput"] = Stats.Round(vsNginx),
                        ["added_p99_ms_vs_direct"] = Stats.Round(addedDirect),
                        ["added_p99_ms_vs_nginx"] = Stats.Round(addedNginx),
                        ["targets_met"] = vsDirect >= 0.85 && vsNginx >= 0.90 && addedDirect <= 1.0,
                        ["cpu_model"] = CpuModel(g, d, n),
                    });
                }
            }
        }

        Console.WriteLine();
        Console.WriteLine("CPU per request (us; instance = morph-init + app, the same for every path) and the server-side throughput ratio it implies when the CPU is the bottleneck");
        Console.WriteLine("request  mode       c  | client instance gateway  nginx | model gw/direct gw/nginx");
        foreach (var row in table)
        {
            var model = row!["cpu_model"]!;
            Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
                $"{row["request"],-8} {row["mode"],-9} {row["concurrency"],3} | {model["client_us"],6} {model["instance_us"],8} {model["gateway_us"],7} {model["nginx_us"],6} | {model["gateway_vs_direct"],15:P0} {model["gateway_vs_nginx"],8:P0}"));
        }

        return new JsonObject
        {
            ["seconds"] = seconds,
            ["warmup_seconds"] = warmup,
            ["bench_process_idle_cpu_ms_per_s"] = Stats.Round(GatewayIdleCpuPerSecond * 1000),
            ["rounds"] = rounds,
            ["instance"] = instance.ToString(),
            ["instance_replacements"] = replaced,
            ["nginx"] = target.Nginx.Version,
            ["nginx_config"] = target.Nginx.Config,
            ["client"] = "separate process (gateway-client): closed loop, hand-written HTTP/1.1 over SslStream, certificate pinned",
            ["targets"] = "gateway >= 85% of direct and >= 90% of nginx throughput; added p99 <= 1 ms",
            ["results"] = table,
            ["trials"] = trials,
        };
    }

    internal static async Task<byte[]> CertificateHashAsync(IPEndPoint endpoint, string name, CancellationToken ct)
    {
        using var socket = new Socket(endpoint.AddressFamily, SocketType.Stream, ProtocolType.Tcp);
        await socket.ConnectAsync(endpoint, ct);
        byte[]? hash = null;
        await using var tls = new SslStream(new NetworkStream(socket, ownsSocket: false));
        await tls.AuthenticateAsClientAsync(new SslClientAuthenticationOptions
        {
            TargetHost = name,
            // Only recorded and compared; the attested verification happened through FunctionHttpHandler above.
            RemoteCertificateValidationCallback = (_, certificate, _, _) =>
            {
                hash = certificate is null ? null : SHA256.HashData(certificate.GetRawCertData());
                return hash is not null;
            },
        }, ct);
        return hash!;
    }

    private static double GatewayIdleCpuPerSecond;

    private sealed record TrialSpec(IPEndPoint Gateway, IPEndPoint Connect, string Name, byte[] Pin, int Concurrency, string Mode, GatewayRequest Request, int Seconds, double Warmup, string WorkDirectory);

    private sealed record Trial(double Rps, double[] LatencyMs, int Errors, string? FirstError, double? ProxyCpuUsPerRequest, string LoadAverage)
    {
        /// <summary>The instance's processes (morph-init, the app, bwrap): the server-side work every path shares.</summary>
        public double? InstanceCpuUsPerRequest { get; init; }

        /// <summary>The load client process, start-up and warm-up included.</summary>
        public double ClientCpuUsPerRequest { get; init; }
    }

    private static async Task<Trial> RunTrialAsync(TrialSpec spec, Func<TimeSpan>? proxyCpu, CancellationToken ct, Func<TimeSpan>? instanceCpu = null)
    {
        var output = Path.Combine(spec.WorkDirectory, "latencies.bin");
        var info = Machine.ChildStartInfo(
        [
            GatewayLoadClient.Command, "--connect", spec.Connect.ToString(), "--sni", spec.Name, "--pin", Convert.ToHexString(spec.Pin),
            "--concurrency", spec.Concurrency.ToString(CultureInfo.InvariantCulture), "--mode", spec.Mode,
            "--request", spec.Request.ToString().ToLowerInvariant(), "--seconds", spec.Seconds.ToString(CultureInfo.InvariantCulture),
            "--warmup", spec.Warmup.ToString(CultureInfo.InvariantCulture), "--out", output,
        ]);

        var instanceBefore = instanceCpu?.Invoke();
        var cpuBefore = proxyCpu?.Invoke();
        var wallStart = Stopwatch.GetTimestamp();
        using var process = Process.Start(info) ?? throw new InvalidOperationException("load client did not start");
        var stdout = process.StandardOutput.ReadToEndAsync(ct);
        var stderr = process.StandardError.ReadToEndAsync(ct);
        await process.WaitForExitAsync(ct);
        var cpuAfter = proxyCpu?.Invoke();
        var instanceAfter = instanceCpu?.Invoke();
        var wall = Stopwatch.GetElapsedTime(wallStart);
        var loadAverage = Machine.LoadAverages(1);
        if (process.ExitCode != 0)
        {
            throw new InvalidOperationException($"load client failed ({process.ExitCode}): {await stderr}");
        }

        var summary = JsonNode.Parse(await stdout)!.AsObject();
        var raw = await File.ReadAllBytesAsync(output, ct);
        var latencies = new double[raw.Length / 4];
        for (var i = 0; i < latencies.Length; i++)
        {
            latencies[i] = BinaryPrimitives.ReadSingleLittleEndian(raw.AsSpan(i * 4)) / 1000.0;
        }

        var total = summary["total_requests"]!.GetValue<long>();
        var idle = spec.Connect.Equals(spec.Gateway) ? GatewayIdleCpuPerSecond * wall.TotalSeconds * 1e6 : 0;
        double? cpuPerRequest = cpuBefore is { } before && cpuAfter is { } after && total > 0 ? Math.Max(0, (after - before).TotalMicroseconds - idle) / total : null;
        double? instancePerRequest = instanceBefore is { } ib && instanceAfter is { } ia && total > 0 ? (ia - ib).TotalMicroseconds / total : null;
        var clientPerRequest = total > 0 ? summary["cpu_ms"]!.GetValue<double>() * 1000 / total : double.NaN;
        return new Trial(latencies.Length / (double)spec.Seconds, latencies, summary["errors"]!.GetValue<int>(), summary["first_error"]?.GetValue<string>(), cpuPerRequest, loadAverage)
        {
            InstanceCpuUsPerRequest = instancePerRequest,
            ClientCpuUsPerRequest = clientPerRequest,
        };
    }

    private static double Median(IEnumerable<double> values) => Stats.Percentile([.. values], 50);

    /// <summary>
    /// On a machine this shared, req/s ratios swing with everyone else's load; CPU per request does much less. With
    /// I = the instance's CPU per request (median over all three paths' trials) and G, N the gateway's and nginx's,
    /// a CPU-bound server does I/(I+G) of direct's throughput through the gateway and (I+N)/(I+G) of nginx's. The
    /// client is left out: in production it is not on the server's cores.
    /// </summary>
    private static JsonObject CpuModel(Cell gateway, Cell direct, Cell nginx)
    {
        var instance = Median(gateway.InstanceCpu.Concat(direct.InstanceCpu).Concat(nginx.InstanceCpu));
        var g = gateway.MedianCpu;
        var n = nginx.MedianCpu;
        return new JsonObject
        {
            ["client_us"] = Stats.Round(Median(gateway.ClientCpu.Concat(direct.ClientCpu).Concat(nginx.ClientCpu))),
            ["instance_us"] = Stats.Round(instance),
            ["gateway_us"] = Stats.Round(g),
            ["nginx_us"] = Stats.Round(n),
            ["gateway_vs_direct"] = Stats.Round(instance / (instance + g)),
            ["gateway_vs_nginx"] = Stats.Round((instance + n) / (instance + g)),
        };
    }

    private sealed class Cell
    {
        private readonly List<double> _latencies = [];
        private readonly List<double> _cpu = [];

        public List<double> InstanceCpu { get; } = [];

        public List<double> ClientCpu { get; } = [];

        public List<double> RpsByRound { get; } = [];

        public int Errors { get; private set; }

        public double MedianRps => Median(RpsByRound);

        public double MedianCpu => _cpu.Count == 0 ? double.NaN : Median(_cpu);

        public void Add(int round, Trial trial)
        {
            _ = round;
            RpsByRound.Add(trial.Rps);
            _latencies.AddRange(trial.LatencyMs);
            Errors += trial.Errors;
            if (trial.ProxyCpuUsPerRequest is { } cpu)
            {
                _cpu.Add(cpu);
            }

            if (trial.InstanceCpuUsPerRequest is { } instance)
            {
                InstanceCpu.Add(instance);
            }

            ClientCpu.Add(trial.ClientCpuUsPerRequest);
        }

        private double[]? _sorted;

        public double P(double p)
        {
            if (_sorted is null || _sorted.Length != _latencies.Count)
            {
                _sorted = [.. _latencies.Order()];
            }

            return SortedPercentile(_sorted, p);
        }

        private static double SortedPercentile(double[] sorted, double p)
        {
            if (sorted.Length == 0)
            {
                return double.NaN;
            }

            var rank = p / 100.0 * (sorted.Length - 1);
            var lo = (int)Math.Floor(rank);
            var hi = (int)Math.Ceiling(rank);
            return sorted[lo] + ((sorted[hi] - sorted[lo]) * (rank - lo));
        }

        public JsonObject ToJson() => new()
        {
            ["rps_median"] = Stats.Round(MedianRps),
            ["rps_by_round"] = new JsonArray([.. RpsByRound.Select(r => (JsonNode)Math.Round(r, 1))]),
            ["requests"] = _latencies.Count,
            ["errors"] = Errors,
            ["p50_ms"] = Stats.Round(P(50)),
            ["p90_ms"] = Stats.Round(P(90)),
            ["p99_ms"] = Stats.Round(P(99)),
            ["p999_ms"] = Stats.Round(P(99.9)),
            ["proxy_cpu_us_per_request"] = _cpu.Count == 0 ? null : Stats.Round(MedianCpu),
            ["instance_cpu_us_per_request"] = InstanceCpu.Count == 0 ? null : Stats.Round(Median(InstanceCpu)),
            ["client_cpu_us_per_request"] = Stats.Round(Median(ClientCpu)),
        };
    }
}
