using System.Collections.Concurrent;
using System.Diagnostics;
using System.Globalization;
using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;
using System.Text.Json.Nodes;
using Morphisms.Agent.Evidence;
using Morphisms.Agent.Kms;
using Morphisms.Agent.Lifecycle;
using Morphisms.Attestation.Simulated;

namespace Morphisms.Bench.Load;

/// <summary>
/// KMS round trips against the dev KMS of the LocalStack (SQLite with <c>synchronous=FULL</c>, audit log on), each
/// first as a closed loop with C workers (maximum rate), then as open loops at fixed rates whose latency counts from
/// each call's scheduled start (no coordinated omission):
/// <list type="bullet">
/// <item><c>login</c>: attest-login as morph-init does it (<see cref="Attestor"/>: fresh P-256 key and CSR,
/// challenge, simulated SNP evidence binding nonce and key, login returning token and certificate) over one pinned,
/// pooled client;</item>
/// <item><c>login-fresh</c>: the same with a new client, so a new TCP + TLS connection, per login (what each new
/// instance really does: it logs in once);</item>
/// <item><c>read</c>: a KV v2 GET of the function's secret with a function token from a login;</item>
/// <item><c>sign</c>: <c>pki/sign/ROLE</c> with a P-256 CSR (a pool of pre-made CSRs, so the caller's keygen is
/// not in the figure).</item>
/// </list>
/// Client and KMS share the machine's cores; the load average and the bench process's CPU time per call (client
/// and KMS together) are recorded beside every figure.
/// </summary>
internal static class KmsScenario
{
    /// <summary>The operations measured when none are named.</summary>
    public const string AllOperations = "login,login-fresh,read,sign";

    private const string Role = "bench";
    private const string RoleDomain = "bench.morphisms.local";
    private static string? _firstFailure;

    public static async Task<JsonObject> RunAsync(BenchEnvironment env, KmsRunOptions options, CancellationToken ct)
    {
        var (seconds, warmup, rates, concurrency, operations) = options;
        var deployed = await env.Stack.Serving.DeployAsync(env.Spec(Flavour.Confidential), ct);
        using var authority = SimulatedTeeAuthority.LoadOrCreate(env.Stack.Paths.SimulatedTeeDirectory, TimeProvider.System);
        var evidence = new SimulatedEvidenceProvider(authority, Convert.FromHexString(deployed.Measurement), "snp");
        var pin = new KmsPin(SHA256.HashData(env.Stack.Kms.TlsCertificate!.RawData), TimeProvider.System);
        KmsClient NewClient() => new(env.Stack.Kms.BaseAddress!, pin, TimeProvider.System, 1, TimeSpan.Zero);
        using var kms = NewClient();
        var attestor = new Attestor(kms, evidence, BenchEnvironment.Function, TimeProvider.System);
        var root = env.Stack.Kms.DevCredentials!.RootToken;
        var secretPath = env.BaseSpec.Secrets ?? throw new InvalidOperationException("the bench function has no secrets path");

        // The sign role, and a function token for the reads (from one real login).
        await kms.SendAsync(HttpMethod.Post, "pki/roles/" + Role, new JsonObject
        {
            ["allowed_domains"] = RoleDomain,
            ["allow_subdomains"] = true,
            ["key_type"] = "ec",
            ["key_bits"] = 256,
            ["ttl"] = "1h",
        }, root, ct);
        var functionToken = "";
        var csrs = Enumerable.Range(0, 64).Select(i =>
        {
            using var key = ECDsa.Create(ECCurve.NamedCurves.nistP256);
            return new CertificateRequest($"CN=c{i}.{RoleDomain}", key, HashAlgorithmName.SHA256).CreateSigningRequestPem();
        }).ToArray();
        var csrIndex = 0;

        var phases = new ConcurrentDictionary<string, ConcurrentBag<double>>(StringComparer.Ordinal);
        var recordPhases = false;
        async Task LoginAsync(Attestor with)
        {
            var report = new Morphisms.Agent.Telemetry.ColdStartReport(TimeProvider.System);
            var a = await with.AttestAsync(report, ct);
            a.Identity.Dispose();

            // An instance keeps its certificate for its lifetime; here thousands a second would otherwise be left to
            // the finalizer, whose X509 frees then cost more CPU than the KMS's own work.
            a.Certificate.Certificate.Dispose();
            foreach (var c in a.Certificate.Chain)
            {
                c.Dispose();
            }
            if (recordPhases)
            {
                foreach (var (phase, phaseMs) in report.Phases)
                {
                    phases.GetOrAdd(phase, _ => []).Add(phaseMs);
                }
            }
        }

        var all = new Dictionary<string, (string Title, Func<Task> Call)>(StringComparer.Ordinal)
        {
            ["login"] = ("attest-login (challenge + evidence + login + certificate), pooled connections", () => LoginAsync(attestor)),
            ["login-fresh"] = ("attest-login, a new TCP + TLS connection per login", async () =>
            {
                using var fresh = NewClient();
                await LoginAsync(new Attestor(fresh, evidence, BenchEnvironment.Function, TimeProvider.System));
            }),
            ["read"] = ($"secret read (KV v2 GET {secretPath}, function token)", () => kms.ReadKvAsync(secretPath, functionToken, ct)),
            ["sign"] = ($"CSR signing (pki/sign/{Role}, P-256 CSR)", () => kms.SendAsync(HttpMethod.Post, "pki/sign/" + Role, new JsonObject
            {
                ["csr"] = csrs[Interlocked.Increment(ref csrIndex) % csrs.Length],
            }, root, ct)),
        };
        var selected = (operations ?? AllOperations).Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries);
        foreach (var name in selected)
        {
            if (!all.ContainsKey(name))
            {
                throw new ArgumentException($"unknown KMS operation '{name}': choose from {AllOperations}");
            }
        }

        var json = new JsonObject
        {
            ["seconds"] = seconds,
            ["warmup_seconds"] = warmup,
            ["targets"] = new JsonObject { ["logins_per_s_min"] = 500, ["p99_ms_max_at_200"] = 20 },
            ["concurrency"] = concurrency,
        };
        var results = new JsonObject();
        Console.WriteLine();
        Console.WriteLine($"KMS round trips, {seconds} s per run after a {warmup} s closed-loop warm-up per operation; closed loop with {concurrency} workers, then fixed rates. load = 1-min load average at the end of the run; cpu = bench process CPU ms per call (client + KMS)");
        Console.WriteLine($"{"run",-34} {"per s",7} {"n",6} {"p50 ms",8} {"p99 ms",8} {"max ms",8} {"fail",5} {"cpu",5} {"load",5}  target");
        foreach (var name in selected)
        {
            var (title, call) = all[name];
            var isLogin = name.StartsWith("login", StringComparison.Ordinal);
            Console.WriteLine($"# {name}: {title}");

            // Function tokens live 30 s by default: the reads get a fresh one before every run.
            async Task PrepareAsync()
            {
                if (name == "read")
                {
                    var login = await attestor.AttestAsync(null, ct);
                    login.Identity.Dispose();
                    functionToken = login.Login.Token;
                }
            }

            await PrepareAsync();

            // Warm-up: connection pool, then a closed loop until tiered compilation has settled — the KMS is a
            // long-running server, and its first seconds spend a core in the JIT.
            for (var i = 0; i < 20; i++)
            {
                await Measure(call, Stopwatch.GetTimestamp());
            }

            if (warmup > 0)
            {
                await ClosedLoopAsync(call, warmup, concurrency, ct);
            }

            phases.Clear();
            await PrepareAsync();
            recordPhases = isLogin;
            var closed = await ClosedLoopAsync(call, seconds, concurrency, ct);
            recordPhases = false;
            var closedMet = !isLogin || closed.PerSecond >= 500;
            Print($"{name}: closed, {concurrency} workers", closed, isLogin ? $">= 500/s {ColdStartScenario.Verdict(closedMet)}" : "");
            var closedJson = closed.ToJson();
            if (isLogin)
            {
                closedJson["met"] = closedMet;
                closedJson["phases"] = new JsonObject([.. phases.OrderBy(p => p.Key, StringComparer.Ordinal)
                    .Select(p => KeyValuePair.Create(p.Key, (JsonNode?)Stats.Summary([.. p.Value])))]);
                foreach (var (phase, values) in phases.OrderBy(p => p.Key, StringComparer.Ordinal))
                {
                    var list = values.ToList();
                    Console.WriteLine($"{$"  phase: {phase}",-34} {"",7} {list.Count,6} {Stats.Percentile(list, 50),8:0.0} {Stats.Percentile(list, 99),8:0.0} {list.Max(),8:0.0}");
                }
            }

            var open = new JsonArray();
            foreach (var rate in rates)
            {
                await PrepareAsync();
                var run = await OpenLoopAsync(call, seconds, rate, ct);
                var p99 = Stats.Percentile(run.Latencies, 99);
                bool? met = isLogin && rate == 200 ? p99 < 20 : null;
                Print($"{name}: open, {rate}/s", run, met is { } m ? $"p99 < 20 ms {ColdStartScenario.Verdict(m)}" : "");
                var runJson = run.ToJson();
                runJson["rate"] = rate;
                runJson["met"] = met;
                open.Add(runJson);
            }

            results[name] = new JsonObject { ["title"] = title, ["closed_loop"] = closedJson, ["open_loop"] = open };
        }

        json["operations"] = results;
        try
        {
            await env.Stack.Serving.RemoveAsync(BenchEnvironment.Function, ct);
        }
        catch (Exception e) when (e is TaskCanceledException or HttpRequestException && !ct.IsCancellationRequested)
        {
            // Seen once after the saturated runs: the KMS unregistration timed out and the exception escaped rm.
            json["cleanup_error"] = e.GetBaseException().Message;
            Console.Error.WriteLine($"# rm after the KMS runs failed: {e.GetBaseException().Message}");
        }

        return json;
    }

    private static void Print(string label, Run run, string target)
    {
        var l = run.Latencies;
        Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
            $"{label,-34} {run.PerSecond,7:0} {l.Count,6} {Stats.Percentile(l, 50),8:0.0} {Stats.Percentile(l, 99),8:0.0} {(l.Count == 0 ? double.NaN : l.Max()),8:0.0} {run.Failures,5} {run.CpuMsPerCall,5:0.0} {run.LoadAverage,5:0.0}  {target}"));
    }

    private static async Task<double?> Measure(Func<Task> call, long scheduled)
    {
        try
        {
            await call();
            return Stats.Ms(scheduled);
        }
        catch (Exception e) when (e is Morphisms.Agent.AgentException or KmsCallException or HttpRequestException or InvalidDataException)
        {
            if (Interlocked.CompareExchange(ref _firstFailure, e.GetBaseException().Message, null) is null)
            {
                Console.Error.WriteLine($"# first failure: {_firstFailure}");
            }

            return null;
        }
    }

    private static async Task<Run> ClosedLoopAsync(Func<Task> call, int seconds, int concurrency, CancellationToken ct)
    {
        var latencies = new ConcurrentBag<double>();
        var failures = 0;
        var cpu = Process.GetCurrentProcess().TotalProcessorTime;
        var start = Stopwatch.GetTimestamp();
        var until = start + (long)(seconds * Stopwatch.Frequency);
        await Task.WhenAll(Enumerable.Range(0, concurrency).Select(_ => Task.Run(async () =>
        {
            while (Stopwatch.GetTimestamp() < until)
            {
                if (await Measure(call, Stopwatch.GetTimestamp()) is { } ms)
                {
                    latencies.Add(ms);
                }
                else
                {
                    Interlocked.Increment(ref failures);
                }
            }
        }, ct)));
        return Run.Of(latencies, failures, start, cpu);
    }

    private static async Task<Run> OpenLoopAsync(Func<Task> call, int seconds, int rate, CancellationToken ct)
    {
        var latencies = new ConcurrentBag<double>();
        var failures = 0;
        var calls = new List<Task>();
        var cpu = Process.GetCurrentProcess().TotalProcessorTime;
        var t0 = Stopwatch.GetTimestamp();
        var total = rate * seconds;
        for (var i = 0; i < total; i++)
        {
            var scheduled = t0 + (long)(i * Stopwatch.Frequency / (double)rate);
            var wait = Stopwatch.GetElapsedTime(Stopwatch.GetTimestamp(), scheduled);
            if (wait > TimeSpan.FromMilliseconds(1))
            {
                await Task.Delay(wait, ct);
            }

            calls.Add(Task.Run(async () =>
            {
                if (await Measure(call, scheduled) is { } ms)
                {
                    latencies.Add(ms);
                }
                else
                {
                    Interlocked.Increment(ref failures);
                }
            }, ct));
        }

        await Task.WhenAll(calls);
        return Run.Of(latencies, failures, t0, cpu);
    }

    /// <summary>One run's successful latencies, failures, achieved rate, CPU per call and the load average after it.</summary>
    private sealed record Run(List<double> Latencies, int Failures, double PerSecond, double CpuMsPerCall, double LoadAverage)
    {
        public static Run Of(ConcurrentBag<double> latencies, int failures, long start, TimeSpan cpuBefore)
        {
            var seconds = Stats.Ms(start) / 1000;
            var list = latencies.ToList();
            var cpu = (Process.GetCurrentProcess().TotalProcessorTime - cpuBefore).TotalMilliseconds;
            return new Run(list, failures, list.Count / seconds, cpu / Math.Max(1, list.Count + failures), LoadAverage1());
        }

        public JsonObject ToJson() => new()
        {
            ["per_s"] = Math.Round(PerSecond, 1),
            ["latency"] = Stats.Summary(Latencies),
            ["failures"] = Failures,
            ["cpu_ms_per_call"] = Math.Round(CpuMsPerCall, 2),
            ["load_average_1m"] = LoadAverage,
        };

        private static double LoadAverage1() =>
            File.Exists("/proc/loadavg") && double.TryParse(File.ReadAllText("/proc/loadavg").Split(' ')[0], CultureInfo.InvariantCulture, out var v) ? v : -1;
    }
}

/// <summary>What the KMS scenario runs: seconds per run, warm-up seconds per operation, open-loop rates, closed-loop workers, operations.</summary>
internal sealed record KmsRunOptions(int Seconds, int Warmup, int[] Rates, int Concurrency, string? Operations);
