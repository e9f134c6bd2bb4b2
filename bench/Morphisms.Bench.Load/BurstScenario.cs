using System.Diagnostics;
using System.Text.Json.Nodes;

namespace Morphisms.Bench.Load;

/// <summary>
/// Burst (the seed benchmark): N concurrent callers, each with its own connection (and, confidential, its own
/// certificate verification), hit the signer at once from zero instances; the figure is the time until the last
/// response. Confidential and plain alternate per size and repetition.
/// </summary>
internal static class BurstScenario
{
    public static async Task<JsonObject> RunAsync(BenchEnvironment env, int[] sizes, int reps, CancellationToken ct)
    {
        var flavours = env.Flavours;
        var rows = new JsonArray();
        var table = new List<(int Size, Flavour Flavour, double LastMs, double P50, double P95, int Errors)>();
        var loadBefore = Machine.LoadAverages();

        foreach (var flavour in flavours)
        {
            await env.DeployFromZeroAsync(flavour, ct);
            await env.SignAsync(flavour, ct);
            await env.RemoveAsync(flavour, ct);
        }

        foreach (var size in sizes)
        {
            for (var rep = 0; rep < reps; rep++)
            {
                foreach (var flavour in flavours)
                {
                    await env.DeployFromZeroAsync(flavour, ct);
                    var chainBuildsBefore = Morphisms.Client.Functions.VerifiedChainCache.Shared.Misses;
                    var start = Stopwatch.GetTimestamp();
                    var samples = await Task.WhenAll(Enumerable.Range(0, size).Select(_ => Task.Run(() => env.SignAsync(flavour, ct), ct)));
                    var last = Stats.Ms(start);
                    var peak = env.Host(flavour).List().Single(f => f.Name == BenchEnvironment.Function).Traffic.Sum(t => t.Ready);
                    await env.RemoveAsync(flavour, ct);
                    var ok = samples.Where(s => s.Status == 200).Select(s => s.TotalMs).ToList();
                    var errors = samples.Count(s => s.Status != 200);
                    table.Add((size, flavour, last, Stats.Percentile(ok, 50), Stats.Percentile(ok, 95), errors));
                    rows.Add(new JsonObject
                    {
                        ["size"] = size,
                        ["rep"] = rep,
                        ["flavour"] = ColdStartScenario.Name(flavour),
                        ["last_response_ms"] = Stats.Round(last),
                        ["latency"] = Stats.Summary(ok),
                        ["errors"] = errors,
                        ["chain_builds"] = Morphisms.Client.Functions.VerifiedChainCache.Shared.Misses - chainBuildsBefore,
                        ["error_samples"] = new JsonArray([.. samples.Where(s => s.Status != 200).Select(s => s.Error).Distinct().Take(5).Select(e => (JsonNode?)e)]),
                        ["ready_instances_after"] = peak,
                    });
                    Console.Error.Write(ColdStartScenario.Progress(flavour));
                }
            }
        }

        Console.Error.WriteLine();
        Console.WriteLine();
        var loadAfter = Machine.LoadAverages();
        Console.WriteLine($"burst from zero: N concurrent POST /sign, each caller its own connection; time until the last response ({reps} rep(s), median shown); load average before {loadBefore}, after {loadAfter}");
        Console.WriteLine($"{"N",4} {"confidential ms",16} {"plain ms",10} {"ratio",7} {"conf p50",9} {"plain p50",10} {"errors c/p",11}  targets");
        var summary = new JsonArray();
        var met = true;
        foreach (var size in sizes)
        {
            var c = table.Where(t => t.Size == size && t.Flavour == Flavour.Confidential).ToList();
            var p = table.Where(t => t.Size == size && t.Flavour == Flavour.Plain).ToList();
            var h = table.Where(t => t.Size == size && t.Flavour == Flavour.PlainHttps).ToList();
            var cLast = Stats.Percentile([.. c.Select(t => t.LastMs)], 50);
            var pLast = Stats.Percentile([.. p.Select(t => t.LastMs)], 50);
            var ratio = cLast / pLast;
            var ratioMet = ratio <= 1.2;
            var timeMet = size != 75 || cLast < 3000;
            var errors = c.Sum(t => t.Errors) + p.Sum(t => t.Errors) + h.Sum(t => t.Errors);
            met &= ratioMet && timeMet && errors == 0;
            double? hLast = h.Count > 0 ? Stats.Percentile([.. h.Select(t => t.LastMs)], 50) : null;
            var https = hLast is { } hl ? $"   plain-https {hl:0} ms, ratio {cLast / hl:0.00} (not a target), errors {h.Sum(t => t.Errors)}" : string.Empty;
            Console.WriteLine($"{size,4} {cLast,16:0} {pLast,10:0} {ratio,7:0.00} {Stats.Percentile([.. c.Select(t => t.P50)], 50),9:0} {Stats.Percentile([.. p.Select(t => t.P50)], 50),10:0} {c.Sum(t => t.Errors),5}/{p.Sum(t => t.Errors),-5}  ratio<=1.2 {ColdStartScenario.Verdict(ratioMet)}{(size == 75 ? $", 75 in <3 s {ColdStartScenario.Verdict(timeMet)}" : string.Empty)}{https}");
            summary.Add(new JsonObject
            {
                ["size"] = size,
                ["confidential_last_ms"] = Stats.Round(cLast),
                ["plain_last_ms"] = Stats.Round(pLast),
                ["ratio"] = Stats.Round(ratio),
                ["plain_https_last_ms"] = hLast is { } hms ? Stats.Round(hms) : null,
                ["ratio_vs_plain_https"] = hLast is { } hr ? Stats.Round(cLast / hr) : null,
                ["ratio_met"] = ratioMet,
                ["time_met"] = size == 75 ? timeMet : null,
                ["errors"] = errors,
            });
        }

        return new JsonObject
        {
            ["sizes"] = new JsonArray([.. sizes.Select(s => (JsonNode)s)]),
            ["reps"] = reps,
            ["setup"] = env.Setup.DeepClone(),
            ["load_average_before"] = loadBefore,
            ["load_average_after"] = loadAfter,
            ["targets"] = new JsonObject { ["ratio_max"] = 1.2, ["n75_last_ms_max"] = 3000 },
            ["all_met"] = met,
            ["summary"] = summary,
            ["runs"] = rows,
        };
    }
}
