namespace Morphisms.Serving.Autoscaling;

/// <summary>
/// Per-second buckets of observed concurrency, averaged over a trailing window, as Knative's
/// metric collector does. Seconds with no sample count as zero concurrency once the window has
/// started, so a revision whose traffic stopped sees its average fall.
/// </summary>
public sealed class ConcurrencyWindow
{
    private readonly SortedDictionary<long, (double Sum, int Count)> _buckets = [];
    private readonly TimeSpan _retention;

    /// <summary>Creates a window that keeps samples for <paramref name="retention"/> (the stable window).</summary>
    public ConcurrencyWindow(TimeSpan retention) => _retention = retention;

    /// <summary>When the first sample arrived; null before any.</summary>
    public DateTimeOffset? FirstSample { get; private set; }

    /// <summary>Records the concurrency seen at <paramref name="time"/>.</summary>
    public void Record(DateTimeOffset time, double concurrency)
    {
        FirstSample ??= time;
        var second = time.ToUnixTimeSeconds();
        _buckets[second] = _buckets.TryGetValue(second, out var bucket) ? (bucket.Sum + concurrency, bucket.Count + 1) : (concurrency, 1);
        var oldest = second - (long)Math.Ceiling(_retention.TotalSeconds) - 1;
        while (_buckets.Count > 0 && _buckets.First().Key < oldest)
        {
            _buckets.Remove(_buckets.First().Key);
        }
    }

    /// <summary>
    /// The average concurrency over the <paramref name="window"/> ending at <paramref name="now"/>,
    /// or null when no sample falls in it and none came before it.
    /// </summary>
    public double? Average(DateTimeOffset now, TimeSpan window)
    {
        if (FirstSample is null)
        {
            return null;
        }

        var end = now.ToUnixTimeSeconds();
        var seconds = Math.Max(1, (long)Math.Ceiling(window.TotalSeconds));
        // Before the window is full, average over the seconds since the first sample only.
        var start = Math.Max(end - seconds + 1, FirstSample.Value.ToUnixTimeSeconds());
        var sum = 0.0;
        foreach (var (second, bucket) in _buckets)
        {
            if (second >= start && second <= end)
            {
                sum += bucket.Sum / bucket.Count;
            }
        }

        return sum / (end - start + 1);
    }
}
