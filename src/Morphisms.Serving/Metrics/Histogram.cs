using System.Globalization;
using System.Text;

namespace Morphisms.Serving.Metrics;

/// <summary>A Prometheus histogram with fixed buckets (seconds), one series per label set.</summary>
internal sealed class Histogram(string name, string help, double[] buckets)
{
    private readonly Dictionary<string, (long[] Counts, double Sum, long Count)> _series = new(StringComparer.Ordinal);
    private readonly Lock _gate = new();

    public void Observe(string labels, double seconds)
    {
        lock (_gate)
        {
            var (counts, sum, count) = _series.TryGetValue(labels, out var s) ? s : (new long[buckets.Length], 0, 0);
            for (var i = 0; i < buckets.Length; i++)
            {
                if (seconds <= buckets[i])
                {
                    counts[i]++;
                }
            }

            _series[labels] = (counts, sum + seconds, count + 1);
        }
    }

    public void WriteTo(StringBuilder text)
    {
        text.Append("# HELP ").Append(name).Append(' ').Append(help).Append('\n');
        text.Append("# TYPE ").Append(name).Append(" histogram\n");
        lock (_gate)
        {
            foreach (var (labels, (counts, sum, count)) in _series.OrderBy(s => s.Key, StringComparer.Ordinal))
            {
                for (var i = 0; i < buckets.Length; i++)
                {
                    text.Append(CultureInfo.InvariantCulture, $"{name}_bucket{{{labels},le=\"{buckets[i].ToString(CultureInfo.InvariantCulture)}\"}} {counts[i]}\n");
                }

                text.Append(CultureInfo.InvariantCulture, $"{name}_bucket{{{labels},le=\"+Inf\"}} {count}\n");
                text.Append(CultureInfo.InvariantCulture, $"{name}_sum{{{labels}}} {sum.ToString("0.######", CultureInfo.InvariantCulture)}\n");
                text.Append(CultureInfo.InvariantCulture, $"{name}_count{{{labels}}} {count}\n");
            }
        }
    }
}
