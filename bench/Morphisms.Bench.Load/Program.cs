using System.Diagnostics;
using System.Globalization;
using System.Reflection;
using System.Text.Json;
using System.Text.Json.Nodes;

namespace Morphisms.Bench.Load;

/// <summary>
/// <c>dotnet run -c Release --project bench/Morphisms.Bench.Load -- SCENARIO [options]</c>: one command per scenario,
/// each prints a table and writes <c>bench/results/SCENARIO.json</c>. Scenarios: <c>coldstart</c>, <c>burst</c>, <c>gateway</c>, <c>kms</c>.
/// </summary>
public static class Program
{
    private const string Usage = """
        usage: Morphisms.Bench.Load SCENARIO [options]
          coldstart [--starts N=30]                  signer from zero: tee sim vs tee none, request -> first response byte
          burst [--sizes 25,50,75] [--reps N=1]      N concurrent requests from zero, time until the last response
          gateway [--seconds S=5] [--rounds N=3] [--concurrency 1,16,64] [--modes keepalive,close] [--requests sign,healthz]
                                                      warm instance via SNI gateway vs direct vs nginx ssl_preread (bench/setup.sh)
          kms [--seconds S=5] [--warmup S=10] [--rates 200] [--concurrency C=16] [--ops login,login-fresh,read,sign]
                                                      KMS login, secret read, CSR signing: closed-loop max rate, then fixed rates;
                                                      each run from a kms-client process (own warm-up), KMS and client CPU apart
              [--kms-cpus 0 --client-cpus 1]            confine the KMS's process and the kms-client to CPUs of their own
        coldstart, burst: [--plain-https]           add a third flavour, tee none behind a gateway serving HTTPS (TLS at the ingress)
        common: [--signer DIR=samples/signer] [--out DIR=bench/results] [--app aot|r2r] [--app-start early|after-secrets] [--morph-init aot|r2r|jit|PATH]
        """;

    /// <summary>Entry point.</summary>
    public static async Task<int> Main(string[] args)
    {
        if (args.Length == 0 || args[0] is "-h" or "--help")
        {
            Console.WriteLine(Usage);
            return args.Length == 0 ? 2 : 0;
        }

        if (args[0] == GatewayLoadClient.Command) { return await GatewayLoadClient.RunAsync(args); } // the gateway scenario's load process
        if (args[0] == KmsLoadClient.Command) { return await KmsLoadClient.RunAsync(args); } // the KMS scenario's load process
        var options = Options.Parse(args.Skip(1));
        var root = RepositoryRoot();
        var signerDir = options.Get("signer") ?? Path.Combine(root, "samples", "signer");
        var outDir = options.Get("out") ?? Path.Combine(root, "bench", "results");
        using var cts = new CancellationTokenSource();
        Console.CancelKeyPress += (_, e) => { e.Cancel = true; cts.Cancel(); };

        if (args[0] is not ("coldstart" or "burst" or "gateway" or "kms"))
        {
            await Console.Error.WriteLineAsync($"bench: unknown scenario {args[0]}\n{Usage}");
            return 2;
        }

        BenchEnvironment started;
        try
        {
            started = await BenchEnvironment.StartAsync(signerDir, options, cts.Token);
        }
        catch (InvalidOperationException e)
        {
            // A missing prerequisite (a bundle not built, a tool not installed): its message says what to run.
            await Console.Error.WriteLineAsync($"bench: {e.Message}");
            return 2;
        }

        JsonObject result;
        await using (var env = started)
        {
            Console.WriteLine($"# machine: {Machine.Describe()}");
            Console.WriteLine($"# log: {env.LogPath}");
            result = args[0] switch
            {
                "coldstart" => await ColdStartScenario.RunAsync(env, options.Int("starts", 30), cts.Token),
                "burst" => await BurstScenario.RunAsync(env, options.Ints("sizes", [25, 50, 75]), options.Int("reps", 1), cts.Token),
                "gateway" => await GatewayScenario.RunAsync(env, options, cts.Token),
                "kms" => await KmsScenario.RunAsync(env, new KmsRunOptions(options.Int("seconds", 5), options.Int("warmup", 10), options.Ints("rates", [200]), options.Int("concurrency", 16), options.Get("ops"))
                {
                    Split = CpuSplit.Parse(options.Get("kms-cpus"), options.Get("client-cpus")),
                }, cts.Token),
                _ => throw new ArgumentException($"unknown scenario {args[0]}\n{Usage}"),
            };
        }

        result["scenario"] = args[0];
        result["command"] = "dotnet run -c Release --project bench/Morphisms.Bench.Load -- " + string.Join(' ', args);
        result["machine"] = Machine.Describe();
        result["finished_utc"] = DateTime.UtcNow.ToString("yyyy-MM-ddTHH:mm:ssZ", CultureInfo.InvariantCulture);
        Directory.CreateDirectory(outDir);
        var file = Path.Combine(outDir, args[0] + ".json");
        await File.WriteAllTextAsync(file, result.ToJsonString(new JsonSerializerOptions { WriteIndented = true }));
        Console.WriteLine($"# wrote {file}");
        return 0;
    }

    internal static string RepositoryRoot()
    {
        for (var dir = new DirectoryInfo(Environment.CurrentDirectory); dir is not null; dir = dir.Parent)
        {
            if (File.Exists(Path.Combine(dir.FullName, "Morphisms.slnx")))
            {
                return dir.FullName;
            }
        }

        var built = typeof(Program).Assembly.GetCustomAttributes<AssemblyMetadataAttribute>().FirstOrDefault(a => a.Key == "RepositoryRoot")?.Value;
        return Path.GetFullPath(built ?? Environment.CurrentDirectory);
    }
}

internal sealed class Options
{
    private readonly Dictionary<string, string> _values = new(StringComparer.Ordinal);

    public static Options Parse(IEnumerable<string> args)
    {
        var options = new Options();
        string? key = null;
        foreach (var arg in args)
        {
            if (arg.StartsWith("--", StringComparison.Ordinal))
            {
                key = arg[2..];
                options._values[key] = "true";
            }
            else if (key is not null)
            {
                options._values[key] = arg;
                key = null;
            }
            else
            {
                throw new ArgumentException($"unexpected argument {arg}");
            }
        }

        return options;
    }

    public string? Get(string key) => _values.GetValueOrDefault(key);

    public int Int(string key, int fallback) => Get(key) is { } v ? int.Parse(v, CultureInfo.InvariantCulture) : fallback;

    public int[] Ints(string key, int[] fallback) =>
        Get(key) is { } v ? [.. v.Split(',').Select(s => int.Parse(s, CultureInfo.InvariantCulture))] : fallback;
}

internal static class Machine
{
    /// <summary>The first <paramref name="count"/> load averages (1, 5, 15 minutes) as the kernel prints them, or "unknown".</summary>
    public static string LoadAverages(int count = 3) =>
        File.Exists("/proc/loadavg") ? string.Join(' ', File.ReadAllText("/proc/loadavg").Split(' ').Take(count)) : "unknown";

    /// <summary>The 1-minute load average, or -1 when unknown.</summary>
    public static double LoadAverage1() =>
        double.TryParse(LoadAverages(1), CultureInfo.InvariantCulture, out var v) ? v : -1;

    /// <summary>
    /// Starts this bench's own assembly as a child running <paramref name="arguments"/> (a scenario's load generator),
    /// with its standard output and error redirected: through the <c>dotnet</c> host when that is what runs us.
    /// </summary>
    public static ProcessStartInfo ChildStartInfo(IEnumerable<string> arguments)
    {
        var processPath = Environment.ProcessPath ?? "dotnet";
        var info = new ProcessStartInfo(processPath) { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        if (Path.GetFileNameWithoutExtension(processPath) == "dotnet")
        {
            info.ArgumentList.Add(typeof(Machine).Assembly.Location);
        }

        foreach (var argument in arguments)
        {
            info.ArgumentList.Add(argument);
        }

        return info;
    }

    public static string Describe()
    {
        var cpu = File.Exists("/proc/cpuinfo")
            ? File.ReadLines("/proc/cpuinfo").FirstOrDefault(l => l.StartsWith("model name", StringComparison.Ordinal))?.Split(':', 2)[1].Trim()
            : null;
        double? memGiB = null;
        if (File.Exists("/proc/meminfo"))
        {
            var line = File.ReadLines("/proc/meminfo").FirstOrDefault(l => l.StartsWith("MemTotal:", StringComparison.Ordinal));
            if (line is not null && long.TryParse(line.Split(' ', StringSplitOptions.RemoveEmptyEntries)[1], CultureInfo.InvariantCulture, out var kb))
            {
                memGiB = kb / 1024.0 / 1024.0;
            }
        }

        return string.Create(CultureInfo.InvariantCulture,
            $"{Environment.ProcessorCount} cores ({cpu ?? "unknown cpu"}), {memGiB:0} GiB, {System.Runtime.InteropServices.RuntimeInformation.OSDescription}, .NET {Environment.Version}");
    }
}

internal static class Stats
{
    public static double Percentile(IReadOnlyList<double> values, double p)
    {
        if (values.Count == 0)
        {
            return double.NaN;
        }

        var sorted = values.Order().ToArray();
        var rank = p / 100.0 * (sorted.Length - 1);
        var lo = (int)Math.Floor(rank);
        var hi = (int)Math.Ceiling(rank);
        return sorted[lo] + ((sorted[hi] - sorted[lo]) * (rank - lo));
    }

    public static JsonObject Summary(IReadOnlyList<double> ms) => new()
    {
        ["n"] = ms.Count,
        ["p50_ms"] = Round(Percentile(ms, 50)),
        ["p95_ms"] = Round(Percentile(ms, 95)),
        ["p99_ms"] = Round(Percentile(ms, 99)),
        ["min_ms"] = Round(ms.Count == 0 ? double.NaN : ms.Min()),
        ["max_ms"] = Round(ms.Count == 0 ? double.NaN : ms.Max()),
        ["mean_ms"] = Round(ms.Count == 0 ? double.NaN : ms.Average()),
    };

    public static double Round(double v) => double.IsNaN(v) ? -1 : Math.Round(v, 2);

    public static double Ms(long startTimestamp) => Stopwatch.GetElapsedTime(startTimestamp).TotalMilliseconds;
}
