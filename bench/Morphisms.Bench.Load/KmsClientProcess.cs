using System.Diagnostics;
using System.Globalization;
using System.Text.Json.Nodes;

namespace Morphisms.Bench.Load;

/// <summary>
/// Runs one <see cref="KmsLoadClient"/> measurement in a child process and splits its CPU: the child reports its own
/// CPU time over the measured window; this process — the KMS, plus the idle serving hosts — samples its own when the
/// child prints the window's edges, and reads the KMS's storage-commit histogram there too.
/// </summary>
internal static class KmsClientProcess
{
    /// <summary>The KMS target's p99 bound: an open loop's calls at or over it are placed in time (<see cref="TailShape"/>).</summary>
    public const double TailThresholdMs = 20;

    public static async Task<KmsRun> RunAsync(KmsClientInput input, KmsMeasurement measurement, StorageCommits commits, string workDirectory, CancellationToken ct)
    {
        var output = Path.Combine(workDirectory, "kms-client.json");
        File.Delete(output);
        var info = Machine.ChildStartInfo([KmsLoadClient.Command, .. measurement.Arguments(), "--out", output]);
        info.RedirectStandardInput = true; // the tokens travel on stdin
        if (measurement.Cpus is { } cpus)
        {
            // Born on this process's CPUs, it would size its runtime (GC, thread pool) for those before moving to its own.
            info.Environment["DOTNET_PROCESSOR_COUNT"] = CpuAffinity.ParseList(cpus).Count.ToString(CultureInfo.InvariantCulture);
        }

        using var process = Process.Start(info) ?? throw new InvalidOperationException("kms-client did not start");
        using var kill = ct.Register(() => Kill(process));
        var window = WindowCpu.Follow(process, () => commits.SnapshotAsync(ct));
        var stderr = process.StandardError.ReadToEndAsync(ct);

        // The tokens travel here, not on the command line.
        await process.StandardInput.WriteAsync(input.ToJson().ToJsonString());
        process.StandardInput.Close();
        await process.WaitForExitAsync(ct);
        var loadAverage = Machine.LoadAverage1();
        var errors = (await stderr).Trim();
        if (process.ExitCode != 0)
        {
            throw new InvalidOperationException($"kms-client {measurement.Label} failed ({process.ExitCode}): {errors}");
        }

        var kmsCpu = await window.Completion;
        var committed = StorageCommits.Between(await window.CommitsAtStart!, await window.CommitsAtEnd!);

        if (errors.Length > 0)
        {
            Console.Error.WriteLine($"# kms-client {measurement.Label}: {errors}");
        }

        var result = JsonNode.Parse(await File.ReadAllTextAsync(output, ct))!.AsObject();
        var latencies = result["latencies_ms"]!.AsArray().Select(n => n!.GetValue<double>()).ToList();
        var failures = result["failures"]!.GetValue<int>();
        var calls = Math.Max(1, latencies.Count + failures);
        var phases = result["phases_ms"]!.AsObject().ToDictionary(
            p => p.Key, p => p.Value!.AsArray().Select(n => n!.GetValue<double>()).ToList(), StringComparer.Ordinal);
        return new KmsRun(
            latencies,
            failures,
            latencies.Count / result["seconds"]!.GetValue<double>(),
            kmsCpu.TotalMilliseconds / calls,
            result["cpu_ms"]!.GetValue<double>() / calls,
            loadAverage,
            phases,
            result["first_failure"]?.GetValue<string>())
        {
            Commits = committed,
            KmsGc = window.Gc,
            ClientGc = GcCounts.FromJson(result["gc"]),
            Tail = measurement.Rate is null ? null : TailShape.Of(TailShape.Parse(result["timeline"]), TailThresholdMs),
        };
    }

    private static void Kill(Process process)
    {
        try
        {
            process.Kill(entireProcessTree: true);
        }
        catch (InvalidOperationException)
        {
            // already exited
        }
    }

    /// <summary>
    /// This process's CPU time between the child's <see cref="KmsLoadClient.Measuring"/> and <see cref="KmsLoadClient.Done"/>
    /// lines. A dedicated thread blocked in <c>ReadLine</c> samples when the line arrives, not when a thread pool kept
    /// busy by the KMS gets round to a continuation. The commit histogram is requested at the same moments.
    /// </summary>
    private sealed class WindowCpu(Func<Task<SortedDictionary<double, long>>> commits)
    {
        private readonly TaskCompletionSource<TimeSpan> _completion = new(TaskCreationOptions.RunContinuationsAsynchronously);

        public Task<TimeSpan> Completion => _completion.Task;

        /// <summary>The storage-commit histogram at the window's start (set before <see cref="Completion"/> succeeds).</summary>
        public Task<SortedDictionary<double, long>>? CommitsAtStart { get; private set; }

        /// <summary>The storage-commit histogram at the window's end (set before <see cref="Completion"/> succeeds).</summary>
        public Task<SortedDictionary<double, long>>? CommitsAtEnd { get; private set; }

        /// <summary>This process's garbage collections over the window (set before <see cref="Completion"/> succeeds).</summary>
        public GcCounts? Gc { get; private set; }

        public static WindowCpu Follow(Process child, Func<Task<SortedDictionary<double, long>>> commits)
        {
            var window = new WindowCpu(commits);
            new Thread(() => window.Read(child.StandardOutput)) { IsBackground = true, Name = "kms-client window" }.Start();
            return window;
        }

        private void Read(StreamReader stdout)
        {
            TimeSpan? start = null;
            TimeSpan? end = null;
            GcWindow? gc = null;
            try
            {
                while (stdout.ReadLine() is { } line)
                {
                    if (line == KmsLoadClient.Measuring)
                    {
                        start = Environment.CpuUsage.TotalTime;
                        gc = GcWindow.Start();
                        CommitsAtStart = commits();
                    }
                    else if (line == KmsLoadClient.Done)
                    {
                        end = Environment.CpuUsage.TotalTime;
                        Gc = gc?.Stop();
                        CommitsAtEnd = commits();
                    }
                }

                _completion.SetResult(start is { } s && end is { } e
                    ? e - s
                    : throw new InvalidDataException("kms-client exited without marking its measured window"));
            }
            catch (Exception ex) when (ex is InvalidDataException or IOException or ObjectDisposedException)
            {
                _completion.SetException(ex);
            }
        }
    }
}

/// <summary>
/// One measured run: successful latencies, failures, achieved rate, CPU ms per call of the KMS's process and of the
/// client's, the load average after it, the login phases (empty for other operations) and the client's first failure.
/// </summary>
internal sealed record KmsRun(
    List<double> Latencies, int Failures, double PerSecond, double KmsCpuMsPerCall, double ClientCpuMsPerCall, double LoadAverage,
    Dictionary<string, List<double>> Phases, string? FirstFailure)
{
    /// <summary>The KMS's storage commits in the measured window.</summary>
    public CommitCounts? Commits { get; init; }

    /// <summary>The KMS process's garbage collections in the measured window.</summary>
    public GcCounts? KmsGc { get; init; }

    /// <summary>The client process's garbage collections in the measured window.</summary>
    public GcCounts? ClientGc { get; init; }

    /// <summary>Where an open loop's slow calls sit in time (null for a closed loop).</summary>
    public TailShape? Tail { get; init; }

    /// <summary>The calls per second the KMS's CPU alone allows on this machine's cores, were the clients elsewhere.</summary>
    public double KmsCapacityPerSecond => 1000.0 * Environment.ProcessorCount / KmsCpuMsPerCall;

    public JsonObject ToJson() => new()
    {
        ["per_s"] = Math.Round(PerSecond, 1),
        ["latency"] = Stats.Summary(Latencies),
        ["failures"] = Failures,
        ["kms_cpu_ms_per_call"] = Math.Round(KmsCpuMsPerCall, 3),
        ["client_cpu_ms_per_call"] = Math.Round(ClientCpuMsPerCall, 3),
        ["kms_capacity_per_s"] = Math.Round(KmsCapacityPerSecond),
        ["load_average_1m"] = LoadAverage,
    };
}
