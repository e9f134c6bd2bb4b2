using System.Text.Json.Nodes;

namespace Morphisms.Bench.Load;

/// <summary>
/// Cold start: request → first response byte from zero instances, the signer <c>tee: sim</c> vs <c>tee: none</c>.
/// Every start is a fresh deploy (initial 0) after <c>rm</c> drained the previous instances, so each measured request
/// is held by the activator while an instance spawns (and, confidential, attests, fetches secrets and its certificate).
/// The two flavours alternate so that machine noise hits both alike.
/// </summary>
internal static class ColdStartScenario
{
    public static async Task<JsonObject> RunAsync(BenchEnvironment env, int starts, CancellationToken ct)
    {
        var flavours = env.Flavours;
        var loadBefore = Machine.LoadAverages();
        var firstByte = flavours.ToDictionary(f => f, _ => new List<double>());
        var phases = flavours.ToDictionary(f => f, _ => new Dictionary<string, List<double>>(StringComparer.Ordinal));
        var errors = flavours.ToDictionary(f => f, _ => new List<string>());

        // One unmeasured start per flavour: JIT of the harness's own client path, file cache of the bundle.
        foreach (var flavour in flavours)
        {
            await env.DeployFromZeroAsync(flavour, ct);
            await env.SignAsync(flavour, ct);
            await env.RemoveAsync(flavour, ct);
        }

        for (var i = 0; i < starts; i++)
        {
            foreach (var flavour in flavours)
            {
                await env.DeployFromZeroAsync(flavour, ct);
                var before = env.PhaseTotals(flavour);
                var sample = await env.SignAsync(flavour, ct);
                var agent = env.AgentReport(flavour);
                await env.RemoveAsync(flavour, ct);
                var after = env.PhaseTotals(flavour);
                if (sample.Status != 200)
                {
                    errors[flavour].Add($"start {i}: {sample.Status} {sample.Error}");
                    continue;
                }

                firstByte[flavour].Add(sample.FirstByteMs);
                foreach (var (phase, (sum, count)) in after)
                {
                    var (sum0, count0) = before.GetValueOrDefault(phase);
                    if (count - count0 == 1)
                    {
                        (phases[flavour].TryGetValue(phase, out var list) ? list : phases[flavour][phase] = []).Add(sum - sum0);
                    }
                }

                if (flavour == Flavour.Confidential && agent is var (agentPhases, agentTotal))
                {
                    // The agent's own breakdown; "after_ready" is what the client still waits once serving saw the
                    // instance ready (spawn + agent total): readiness hand-off, gateway, TLS handshake, first request.
                    foreach (var (phase, ms) in agentPhases)
                    {
                        Add(phases[flavour], "agent:" + phase, ms);
                    }

                    Add(phases[flavour], "agent:total", agentTotal);
                    if (phases[flavour].TryGetValue("spawn", out var spawns))
                    {
                        Add(phases[flavour], "after_ready", sample.FirstByteMs - spawns[^1] - agentTotal);
                    }
                }

                Console.Error.Write(Progress(flavour));
            }
        }

        Console.Error.WriteLine();
        var loadAfter = Machine.LoadAverages();
        var conf = firstByte[Flavour.Confidential];
        var plain = firstByte[Flavour.Plain];
        var ratio50 = Stats.Percentile(conf, 50) / Stats.Percentile(plain, 50);
        var ratio95 = Stats.Percentile(conf, 95) / Stats.Percentile(plain, 95);

        Console.WriteLine();
        Console.WriteLine($"cold start, request -> first response byte, {starts} starts each (fresh deploy from zero every start); load average before {loadBefore}, after {loadAfter}");
        Console.WriteLine($"{"flavour",-14} {"n",4} {"p50 ms",9} {"p95 ms",9} {"min ms",9} {"max ms",9} {"errors",7}");
        foreach (var flavour in flavours)
        {
            var s = firstByte[flavour];
            Console.WriteLine($"{Name(flavour),-14} {s.Count,4} {Stats.Percentile(s, 50),9:0.0} {Stats.Percentile(s, 95),9:0.0} {(s.Count > 0 ? s.Min() : double.NaN),9:0.0} {(s.Count > 0 ? s.Max() : double.NaN),9:0.0} {errors[flavour].Count,7}");
        }

        Console.WriteLine($"ratio confidential/plain: p50 {ratio50:0.00}, p95 {ratio95:0.00}   (targets: ratio <= 1.15 {Verdict(ratio50 <= 1.15)}, confidential p50 <= 300 ms {Verdict(Stats.Percentile(conf, 50) <= 300)})");
        double? ratioHttps50 = firstByte.TryGetValue(Flavour.PlainHttps, out var https) ? Stats.Percentile(conf, 50) / Stats.Percentile(https, 50) : null;
        if (ratioHttps50 is { } r)
        {
            Console.WriteLine($"ratio confidential/plain-https (TLS at the gateway, not a target): p50 {r:0.00}, p95 {Stats.Percentile(conf, 95) / Stats.Percentile(https!, 95):0.00}");
        }

        Console.WriteLine();
        Console.WriteLine("per-phase (serving metrics; agent report for confidential), ms");
        Console.WriteLine($"{"flavour",-14} {"phase",-20} {"n",4} {"p50",9} {"p95",9} {"mean",9}");
        foreach (var flavour in flavours)
        {
            foreach (var (phase, values) in phases[flavour].OrderBy(p => PhaseOrder(p.Key)))
            {
                Console.WriteLine($"{Name(flavour),-14} {phase,-20} {values.Count,4} {Stats.Percentile(values, 50),9:0.0} {Stats.Percentile(values, 95),9:0.0} {values.Average(),9:0.0}");
            }
        }

        var json = new JsonObject
        {
            ["starts"] = starts,
            ["setup"] = env.Setup.DeepClone(),
            ["load_average_before"] = loadBefore,
            ["load_average_after"] = loadAfter,
            ["targets"] = new JsonObject { ["ratio_max"] = 1.15, ["confidential_p50_ms_max"] = 300 },
            ["ratio_p50"] = Stats.Round(ratio50),
            ["ratio_p95"] = Stats.Round(ratio95),
            ["ratio_met"] = ratio50 <= 1.15,
            ["p50_met"] = Stats.Percentile(conf, 50) <= 300,
            ["ratio_p50_vs_plain_https"] = ratioHttps50 is { } h ? Stats.Round(h) : null,
        };
        foreach (var flavour in flavours)
        {
            var phaseJson = new JsonObject();
            foreach (var (phase, values) in phases[flavour])
            {
                phaseJson[phase] = Stats.Summary(values);
            }

            json[Name(flavour)] = new JsonObject
            {
                ["first_byte"] = Stats.Summary(firstByte[flavour]),
                ["samples_ms"] = new JsonArray([.. firstByte[flavour].Select(v => (JsonNode)Stats.Round(v))]),
                ["phases"] = phaseJson,
                ["errors"] = new JsonArray([.. errors[flavour].Select(e => (JsonNode)e)]),
            };
        }

        return json;
    }

    private static void Add(Dictionary<string, List<double>> phases, string phase, double ms) =>
        (phases.TryGetValue(phase, out var list) ? list : phases[phase] = []).Add(ms);

    public static string Name(Flavour flavour) => flavour switch
    {
        Flavour.Confidential => "confidential",
        Flavour.Plain => "plain",
        _ => "plain-https",
    };

    /// <summary>The character printed as each start or burst finishes.</summary>
    public static char Progress(Flavour flavour) => flavour switch
    {
        Flavour.Confidential => 'c',
        Flavour.Plain => 'p',
        _ => 'h',
    };

    public static string Verdict(bool met) => met ? "MET" : "MISSED";

    // Serving's phases, then the agent's in the order they run, then what follows readiness.
    private static int PhaseOrder(string phase) => phase switch
    {
        "spawn" => 0,
        "attestation" => 1,
        "secrets" => 2,
        "app_ready" => 3,
        "agent:launch" => 10,
        "agent:pin" => 11,
        "agent:app_spawn" => 12,
        "agent:keygen" => 13,
        "agent:challenge" => 14,
        "agent:evidence" => 15,
        "agent:login" => 16,
        "agent:certificate" => 17,
        "agent:secrets" => 18,
        "agent:terminator" => 19,
        "agent:app_ready" => 20,
        "agent:total" => 21,
        "after_ready" => 30,
        "first_byte" => 40,
        _ => 50,
    };
}
