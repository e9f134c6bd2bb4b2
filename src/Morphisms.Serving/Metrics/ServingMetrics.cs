using System.Collections.Concurrent;
using System.Globalization;
using System.Text;
using Morphisms.Serving.Runtime;

namespace Morphisms.Serving.Metrics;

/// <summary>
/// The serving layer's Prometheus metrics: the cold-start histogram by phase (spawn, attestation, secrets,
/// app_ready from the agent's report; first_byte measured at the gateway for requests that waited for an
/// instance), requests, and — read at scrape time — concurrency, instances per revision and state, and the
/// activator's queue depth. Labels are function and revision names only, never hosts or paths.
/// </summary>
public sealed class ServingMetrics
{
    private static readonly double[] ColdStartBuckets = [0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60];
    private readonly Histogram _coldStart = new("morph_cold_start_phase_seconds", "Cold-start time by phase.", ColdStartBuckets);
    private readonly ConcurrentDictionary<(string Function, string Revision, string Outcome), long> _requests = new();

    /// <summary>Gauges read at scrape time: per revision, its function, concurrency, queue depth and instance counts.</summary>
    public Func<IEnumerable<RevisionGauges>> Gauges { get; set; } = () => [];

    /// <summary>Records an instance's cold start (the phases the agent reported and the runtime measured).</summary>
    public void ColdStart(string function, string revision, ColdStartPhases phases)
    {
        Phase(function, revision, "spawn", phases.SpawnMs);
        Phase(function, revision, "attestation", phases.AttestationMs);
        Phase(function, revision, "secrets", phases.SecretsMs);
        Phase(function, revision, "app_ready", phases.AppReadyMs);
    }

    /// <summary>Records the time from a held request's arrival to its first response byte.</summary>
    public void FirstByte(string function, string revision, TimeSpan elapsed) => Phase(function, revision, "first_byte", elapsed.TotalMilliseconds);

    /// <summary>Counts a request (a connection in confidential mode) with its outcome: <c>served</c>, <c>refused</c>, or an HTTP status class.</summary>
    public void Request(string function, string revision, string outcome) =>
        _requests.AddOrUpdate((function, revision, outcome), 1, (_, n) => n + 1);

    /// <summary>Requests counted for a revision (all outcomes).</summary>
    public long Requests(string revision) => _requests.Where(r => r.Key.Revision == revision).Sum(r => r.Value);

    /// <summary>The Prometheus text exposition.</summary>
    public string Render()
    {
        var text = new StringBuilder();
        _coldStart.WriteTo(text);
        text.Append("# HELP morph_requests_total Requests (connections in confidential mode) by outcome.\n# TYPE morph_requests_total counter\n");
        foreach (var ((function, revision, outcome), count) in _requests.OrderBy(r => r.Key))
        {
            text.Append(CultureInfo.InvariantCulture, $"morph_requests_total{{function=\"{function}\",revision=\"{revision}\",outcome=\"{outcome}\"}} {count}\n");
        }

        var gauges = Gauges().ToList();
        Gauge(text, "morph_revision_concurrency", "Requests in flight per revision.", gauges.Select(g => (Labels(g), (double)g.Concurrency)));
        Gauge(text, "morph_activator_queue_depth", "Requests held by the activator per revision.", gauges.Select(g => (Labels(g), (double)g.Queued)));
        Gauge(text, "morph_revision_desired_instances", "Instances the autoscaler wants per revision.", gauges.Select(g => (Labels(g), (double)g.Desired)));
        Gauge(text, "morph_revision_instances", "Instances per revision and state.", gauges.SelectMany(g =>
            g.Instances.Select(i => ($"{Labels(g)},state=\"{i.Key.ToString().ToLowerInvariant()}\"", (double)i.Value))));
        return text.ToString();
    }

    private void Phase(string function, string revision, string phase, double ms) =>
        _coldStart.Observe($"function=\"{function}\",revision=\"{revision}\",phase=\"{phase}\"", ms / 1000);

    private static string Labels(RevisionGauges g) => $"function=\"{g.Function}\",revision=\"{g.Revision}\"";

    private static void Gauge(StringBuilder text, string name, string help, IEnumerable<(string Labels, double Value)> series)
    {
        text.Append(CultureInfo.InvariantCulture, $"# HELP {name} {help}\n# TYPE {name} gauge\n");
        foreach (var (labels, value) in series)
        {
            text.Append(CultureInfo.InvariantCulture, $"{name}{{{labels}}} {value.ToString(CultureInfo.InvariantCulture)}\n");
        }
    }
}

/// <summary>Scrape-time values of one revision.</summary>
/// <param name="Function">The function.</param>
/// <param name="Revision">The revision.</param>
/// <param name="Concurrency">Requests in flight at the gateway.</param>
/// <param name="Queued">Requests held by the activator.</param>
/// <param name="Desired">Instances asked for.</param>
/// <param name="Instances">Instances per state.</param>
public sealed record RevisionGauges(string Function, string Revision, int Concurrency, int Queued, int Desired, IReadOnlyDictionary<InstanceState, int> Instances);
