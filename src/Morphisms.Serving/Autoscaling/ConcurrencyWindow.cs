namespace Morphisms.Serving.Autoscaling;

/// <summary>
/// Per-second buckets of observed concurrency, averaged over a trailing window, as Knative's
/// metric collector does. Seconds with no sample count as zero concurrency once the window has
/// started, so a revision whose traffic stopped sees its average fall. Times are positions on a monotonic
/// clock (time elapsed since any fixed start, e.g. <see cref="TimeProvider.GetElapsedTime(long)"/>), never the wall
/// clock: an NTP step back would put new samples before the window and empty it.
/// </summary>
public sealed class ConcurrencyWindow
{
    private readonly SortedDictionary<long, (double Sum, int Count)> _buckets = [];
    private readonly TimeSpan _retention;

    /// <summary>Creates a window that keeps samples for <paramref name="retention"/> (the stable window).</summary>
    public ConcurrencyWindow(TimeSpan retention) => _retention = retention;

    /// <summary>When the first sample arrived (on the monotonic clock); null before any.</summary>
    public TimeSpan? FirstSample { get; private set; }

    /// <summary>Records the concurrency seen at <paramref name="at"/>, a position on a monotonic clock.</summary>
    public void Record(TimeSpan at, double concurrency)
    {
        FirstSample ??= at;
        var second = Second(at);
        _buckets[second] = _buckets.TryGetValue(second, out var bucket) ? (bucket.Sum + concurrency, bucket.Count + 1) : (concurrency, 1);
        var oldest = second - (long)Math.Ceiling(_retention.TotalSeconds) - 1;
        while (_buckets.Count > 0 && _buckets.First().Key < oldest)
        {
            _buckets.Remove(_buckets.First().Key);
        }
    }

    /// <summary>
    /// The average concurrency over the <paramref name="window"/> ending at <paramref name="now"/> (on the clock
    /// <see cref="Record"/> was given), or null when no sample falls in it and none came before it.
    /// </summary>
    public double? Average(TimeSpan now, TimeSpan window)
    {
        if (FirstSample is null)
        {
            return null;
        }

        var end = Second(now);
        var seconds = Math.Max(1, (long)Math.Ceiling(window.TotalSeconds));
        // Before the window is full, average over the seconds since the first sample only.
        var start = Math.Max(end - seconds + 1, Second(FirstSample.Value));
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

    private static long Second(TimeSpan at) => (long)Math.Floor(at.TotalSeconds);
}
