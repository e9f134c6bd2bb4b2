using System.Globalization;
using System.Text.Json.Nodes;

namespace Morphisms.Bench.Load;

/// <summary>A process's garbage collections over a measured window: how many of each generation and their total pause.</summary>
internal readonly record struct GcCounts(int Gen0, int Gen1, int Gen2, double PauseMs)
{
    public JsonObject ToJson() => new()
    {
        ["gen0"] = Gen0,
        ["gen1"] = Gen1,
        ["gen2"] = Gen2,
        ["pause_ms"] = Math.Round(PauseMs, 2),
    };

    public static GcCounts? FromJson(JsonNode? node) => node is JsonObject o
        ? new GcCounts(o["gen0"]!.GetValue<int>(), o["gen1"]!.GetValue<int>(), o["gen2"]!.GetValue<int>(), o["pause_ms"]!.GetValue<double>())
        : null;

    public override string ToString() => string.Create(CultureInfo.InvariantCulture, $"{Gen0}/{Gen1}/{Gen2} (gen0/1/2), {PauseMs:0.0} ms paused");
}

/// <summary>Samples this process's GC counters at a window's start; <see cref="Stop"/> gives the difference.</summary>
internal readonly struct GcWindow
{
    private readonly int _gen0, _gen1, _gen2;
    private readonly TimeSpan _pause;

    private GcWindow(int gen0, int gen1, int gen2, TimeSpan pause) => (_gen0, _gen1, _gen2, _pause) = (gen0, gen1, gen2, pause);

    public static GcWindow Start() => new(GC.CollectionCount(0), GC.CollectionCount(1), GC.CollectionCount(2), GC.GetTotalPauseDuration());

    public GcCounts Stop() => new(
        GC.CollectionCount(0) - _gen0, GC.CollectionCount(1) - _gen1, GC.CollectionCount(2) - _gen2,
        (GC.GetTotalPauseDuration() - _pause).TotalMilliseconds);
}

/// <summary>
/// Where an open loop's slow calls sit in time. A p99 made of calls bunched into a few short stretches points at
/// stalls (a GC pause, a slow fsync, a burst of connection set-ups); one made of calls spread over the whole window points
/// at CPU queueing, the cores being too busy on average.
/// </summary>
/// <param name="Threshold">What counts as slow (ms).</param>
/// <param name="Slow">Calls at or over it.</param>
/// <param name="Stretches">Runs of slow calls whose starts are less than <see cref="Gap"/> apart.</param>
/// <param name="LongestStretchMs">From the first start to the last end of the longest such run.</param>
/// <param name="InLargestStretches">Slow calls in the three largest runs.</param>
internal sealed record TailShape(double Threshold, int Slow, int Stretches, double LongestStretchMs, int InLargestStretches)
{
    /// <summary>Slow calls starting within this of each other belong to one stretch.</summary>
    public const double Gap = 50;

    public static TailShape Of(IReadOnlyList<(double StartMs, double LatencyMs)> timeline, double threshold)
    {
        var slow = timeline.Where(t => t.LatencyMs >= threshold).OrderBy(t => t.StartMs).ToList();
        var stretches = new List<List<(double StartMs, double LatencyMs)>>();
        foreach (var call in slow)
        {
            if (stretches.Count > 0 && call.StartMs - stretches[^1][^1].StartMs < Gap)
            {
                stretches[^1].Add(call);
            }
            else
            {
                stretches.Add([call]);
            }
        }

        var longest = stretches.Count == 0 ? 0 : stretches.Max(s => s.Max(c => c.StartMs + c.LatencyMs) - s[0].StartMs);
        var largest = stretches.Select(s => s.Count).OrderDescending().Take(3).Sum();
        return new TailShape(threshold, slow.Count, stretches.Count, longest, largest);
    }

    public static List<(double StartMs, double LatencyMs)> Parse(JsonNode? timeline) => timeline is JsonArray pairs
        ? [.. pairs.Select(p => (p![0]!.GetValue<double>(), p[1]!.GetValue<double>())).Where(p => p.Item2 >= 0)]
        : [];

    public JsonObject ToJson() => new()
    {
        ["threshold_ms"] = Threshold,
        ["slow_calls"] = Slow,
        ["stretches"] = Stretches,
        ["stretch_gap_ms"] = Gap,
        ["longest_stretch_ms"] = Math.Round(LongestStretchMs, 1),
        ["slow_calls_in_3_largest_stretches"] = InLargestStretches,
    };

    public override string ToString() => Slow == 0
        ? string.Create(CultureInfo.InvariantCulture, $"no call over {Threshold:0} ms")
        : string.Create(CultureInfo.InvariantCulture,
            $"{Slow} calls over {Threshold:0} ms in {Stretches} stretches (starts < {Gap:0} ms apart); the 3 largest hold {InLargestStretches}, the longest lasts {LongestStretchMs:0} ms");
}
