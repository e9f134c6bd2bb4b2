using System.Collections.Concurrent;
using System.Diagnostics;
using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;
using System.Text.Json.Nodes;
using Morphisms.Agent.Kms;
using Morphisms.Agent.Lifecycle;

namespace Morphisms.Bench.Load;

/// <summary>
/// The KMS scenario's load generator, run as its own process (<c>Morphisms.Bench.Load kms-client --op OP …</c>, the
/// tokens and addresses as <see cref="KmsClientInput"/> JSON on stdin) so that its CPU — keygen, CSRs, simulated SNP
/// evidence signing, the HTTP client — is not counted as the KMS's: in production every agent runs in its own TEE on
/// other hosts. It warms up (20 calls, then a closed loop, then a 1 s pause), then makes ONE measurement of
/// <see cref="KmsMeasurement"/>, printing <see cref="Measuring"/> and <see cref="Done"/> on stdout at the window's edges
/// so the parent (the KMS's process) can sample its own CPU over the same window, and writes latencies, failures, login
/// phases and its own CPU time in the window to <c>--out FILE</c> as JSON.
/// </summary>
internal static class KmsLoadClient
{
    public const string Command = "kms-client";

    /// <summary>Printed on stdout when the measured window starts.</summary>
    public const string Measuring = "measuring";

    /// <summary>Printed on stdout when the measured window ends.</summary>
    public const string Done = "done";

    private static readonly TimeSpan Settle = TimeSpan.FromSeconds(1);

    public static async Task<int> RunAsync(string[] args)
    {
        var options = Options.Parse(args.Skip(1));
        var measurement = KmsMeasurement.Parse(options);
        if (measurement.Cpus is { } cpus)
        {
            CpuAffinity.ConfineProcess(CpuAffinity.ParseList(cpus));
        }

        var output = options.Get("out") ?? throw new ArgumentException("--out FILE is required");
        var input = KmsClientInput.Parse(JsonNode.Parse(await Console.In.ReadToEndAsync())?.AsObject()
            ?? throw new InvalidDataException("kms-client: no input on stdin"));
        using var agent = new KmsAgentSide(input);
        var calls = new KmsCalls(agent, input);
        var call = calls.For(measurement.Operation);

        // Warm-up: connection pool, then a closed loop until tiered compilation has settled, on both sides — the KMS is
        // a long-running server whose first seconds spend a core in the JIT, and this process has just started.
        for (var i = 0; i < 20; i++)
        {
            await calls.MeasureAsync(call, Stopwatch.GetTimestamp());
        }

        if (measurement.Warmup > 0)
        {
            await ClosedLoopAsync(calls, call, measurement.Warmup, measurement.Concurrency);
        }

        // Then a pause, so that what the warm-up leaves behind in both processes (background tier-1 JIT, a GC after the
        // saturated loop) is not billed to the measured calls: without it a 100/s read window after a closed-loop
        // warm-up showed 2-4x the KMS CPU per call.
        await Task.Delay(Settle);
        calls.RecordPhases = true;
        var cpu = Environment.CpuUsage.TotalTime;
        var gc = GcWindow.Start();
        Console.WriteLine(Measuring);
        var start = Stopwatch.GetTimestamp();
        var (latencies, failures) = measurement.Rate is { } rate
            ? await OpenLoopAsync(calls, call, measurement.Seconds, rate)
            : await ClosedLoopAsync(calls, call, measurement.Seconds, measurement.Concurrency);
        var seconds = Stats.Ms(start) / 1000;
        Console.WriteLine(Done);
        var cpuMs = (Environment.CpuUsage.TotalTime - cpu).TotalMilliseconds;
        var gcJson = gc.Stop().ToJson();
        calls.RecordPhases = false;

        var result = new JsonObject
        {
            ["operation"] = measurement.Operation,
            ["seconds"] = seconds,
            ["latencies_ms"] = new JsonArray([.. latencies.Select(ms => (JsonNode)ms)]),
            ["failures"] = failures,
            ["first_failure"] = calls.FirstFailure,
            ["cpu_ms"] = cpuMs,
            ["phases_ms"] = calls.PhasesJson(),
            ["gc"] = gcJson,
            ["timeline"] = calls.TimelineJson(),
        };
        await File.WriteAllTextAsync(output, result.ToJsonString());
        return 0;
    }

    private static async Task<(List<double> Latencies, int Failures)> ClosedLoopAsync(KmsCalls calls, Func<Task> call, int seconds, int concurrency)
    {
        var tally = new Tally();
        var until = Stopwatch.GetTimestamp() + (long)(seconds * Stopwatch.Frequency);
        await Task.WhenAll(Enumerable.Range(0, concurrency).Select(_ => Task.Run(async () =>
        {
            while (Stopwatch.GetTimestamp() < until)
            {
                tally.Add(await calls.MeasureAsync(call, Stopwatch.GetTimestamp()));
            }
        })));
        return tally.Result();
    }

    /// <summary>Calls start on schedule whether or not earlier ones have returned; latency counts from the scheduled start.</summary>
    private static async Task<(List<double> Latencies, int Failures)> OpenLoopAsync(KmsCalls calls, Func<Task> call, int seconds, int rate)
    {
        var tally = new Tally();
        var started = new List<Task>();
        var t0 = Stopwatch.GetTimestamp();
        var total = rate * seconds;

        // The schedule is kept by a thread of its own that sleeps to each start (clock_nanosleep) rather than by Task.Delay,
        // whose timer and thread-pool hop started calls 2.5 ms late at the median and 7 ms at p99 at 100/s. That
        // lateness counts as latency (from the schedule), so it was the load generator's own tail, not the KMS's.
        var dispatcher = new Thread(() =>
        {
            for (var i = 0; i < total; i++)
            {
                var scheduled = t0 + (long)(i * Stopwatch.Frequency / (double)rate);
                PreciseSleep.Until(scheduled);

                started.Add(Task.Run(async () =>
                {
                    // How late this process starts a call (its thread pool, on cores shared with the KMS): latency counts
                    // from the schedule, so the load generator's own lateness is shown apart.
                    calls.AddPhase(KmsCalls.StartLag, Stats.Ms(scheduled));
                    var latency = await calls.MeasureAsync(call, scheduled);
                    tally.Add(latency);
                    calls.AddToTimeline(Stopwatch.GetElapsedTime(t0, scheduled).TotalMilliseconds, latency);
                }));
            }
        })
        {
            IsBackground = true,
            Name = "open-loop schedule",
        };
        dispatcher.Start();
        await Task.Run(dispatcher.Join);
        await Task.WhenAll(started);
        return tally.Result();
    }

    /// <summary>Latencies of the calls that succeeded and the count of those that failed, added from any thread.</summary>
    private sealed class Tally
    {
        private readonly ConcurrentBag<double> _latencies = [];
        private int _failures;

        /// <summary>Adds one call's outcome: its latency, or null when it failed.</summary>
        public void Add(double? latencyMs)
        {
            if (latencyMs is { } ms)
            {
                _latencies.Add(ms);
            }
            else
            {
                Interlocked.Increment(ref _failures);
            }
        }

        public (List<double> Latencies, int Failures) Result() => ([.. _latencies], Volatile.Read(ref _failures));
    }

    /// <summary>The calls of each operation as the child makes them, with the first failure and the login phases they record.</summary>
    private sealed class KmsCalls(KmsAgentSide agent, KmsClientInput input)
    {
        private readonly ConcurrentDictionary<string, ConcurrentBag<double>> _phases = new(StringComparer.Ordinal);
        private readonly ConcurrentBag<(double StartMs, double? LatencyMs)> _timeline = [];
        private readonly Attestor _attestor = agent.Attestor(agent.Client);
        private int _csrIndex;
        private string? _firstFailure;

        /// <summary>The phase an open loop records for every call: how late it started against its schedule.</summary>
        public const string StartLag = "start lag (client)";

        /// <summary>Whether logins add their phase timings (only inside the measured window).</summary>
        public bool RecordPhases { get; set; }

        /// <summary>Adds one timing of <paramref name="phase"/>, when inside the measured window.</summary>
        public void AddPhase(string phase, double ms)
        {
            if (RecordPhases)
            {
                _phases.GetOrAdd(phase, _ => []).Add(ms);
            }
        }

        /// <summary>The first failure's message, warm-up included.</summary>
        public string? FirstFailure => _firstFailure;

        public Func<Task> For(string operation) => operation switch
        {
            "login" => () => LoginAsync(_attestor),
            "login-fresh" => async () =>
            {
                using var fresh = agent.NewClient();
                await LoginAsync(agent.Attestor(fresh));
            },
            "read" => () => agent.Client.ReadKvAsync(input.SecretPath, input.FunctionToken ?? throw new InvalidDataException("read needs a function token"), default),
            "sign" => SignCall(),
            _ => throw new ArgumentException($"unknown KMS operation '{operation}': choose from {KmsOperations.All}"),
        };

        /// <summary>Runs one call; its latency from <paramref name="scheduled"/>, or null when it failed.</summary>
        public async Task<double?> MeasureAsync(Func<Task> call, long scheduled)
        {
            try
            {
                await call();
                return Stats.Ms(scheduled);
            }
            catch (Exception e) when (e is Morphisms.Agent.AgentException or KmsCallException or HttpRequestException or InvalidDataException)
            {
                Interlocked.CompareExchange(ref _firstFailure, e.GetBaseException().Message, null);
                return null;
            }
        }

        /// <summary>
        /// Adds an open-loop call's scheduled start (ms into the window) and latency (null: failed), so slow calls can be
        /// placed in time: bunched together they point at a stall (a GC, a slow fsync), spread out at CPU queueing.
        /// </summary>
        public void AddToTimeline(double startMs, double? latencyMs) => _timeline.Add((startMs, latencyMs));

        /// <summary>The timeline as [start_ms, latency_ms] pairs in start order (latency -1 for a failure).</summary>
        public JsonArray TimelineJson() => new([.. _timeline.OrderBy(t => t.StartMs)
            .Select(t => (JsonNode)new JsonArray(Math.Round(t.StartMs, 2), Math.Round(t.LatencyMs ?? -1, 2)))]);

        public JsonObject PhasesJson() => new([.. _phases.OrderBy(p => p.Key, StringComparer.Ordinal)
            .Select(p => KeyValuePair.Create(p.Key, (JsonNode?)new JsonArray([.. p.Value.Select(ms => (JsonNode)ms)])))]);

        // A pool of pre-made CSRs, so the caller's keygen is not in the figure.
        private Func<Task> SignCall()
        {
            string[] csrs = [.. Enumerable.Range(0, 64).Select(i =>
            {
                using var key = ECDsa.Create(ECCurve.NamedCurves.nistP256);
                return new CertificateRequest($"CN=c{i}.{input.RoleDomain}", key, HashAlgorithmName.SHA256).CreateSigningRequestPem();
            })];
            return () => agent.Client.SendAsync(HttpMethod.Post, "pki/sign/" + input.Role, new JsonObject
            {
                ["csr"] = csrs[Interlocked.Increment(ref _csrIndex) % csrs.Length],
            }, input.RootToken, default);
        }

        private async Task LoginAsync(Attestor with)
        {
            var report = new Morphisms.Agent.Telemetry.ColdStartReport(TimeProvider.System);
            var a = await with.AttestAsync(report, default);
            a.Identity.Dispose();

            // An instance keeps its certificate for its lifetime; here thousands a second would otherwise be left to
            // the finalizer, whose X509 frees then cost more CPU than the KMS's own work.
            a.Certificate.Certificate.Dispose();
            foreach (var c in a.Certificate.Chain)
            {
                c.Dispose();
            }

            foreach (var (phase, phaseMs) in report.Phases)
            {
                AddPhase(phase, phaseMs);
            }
        }
    }
}
