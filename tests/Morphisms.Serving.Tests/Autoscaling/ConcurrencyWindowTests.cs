using Morphisms.Serving.Autoscaling;

namespace Morphisms.Serving.Tests.Autoscaling;

public class ConcurrencyWindowTests
{
    // A position on a monotonic clock (time since some fixed start).
    private static readonly TimeSpan Start = TimeSpan.FromSeconds(1000);

    [Fact]
    public void Averages_per_second_buckets_and_counts_silent_seconds_as_zero()
    {
        var window = new ConcurrencyWindow(TimeSpan.FromSeconds(60));
        Assert.Null(window.Average(Start, TimeSpan.FromSeconds(6)));
        window.Record(Start, 10);
        window.Record(Start + TimeSpan.FromMilliseconds(500), 20); // same second: averaged to 15
        window.Record(Start + TimeSpan.FromSeconds(2), 30);
        Assert.Equal(15, window.Average(Start, TimeSpan.FromSeconds(6)));
        Assert.Equal((15 + 0 + 30) / 3.0, window.Average(Start + TimeSpan.FromSeconds(2), TimeSpan.FromSeconds(6))!.Value, 6);
        Assert.Equal((0 + 30 + 0 + 0 + 0 + 0) / 6.0, window.Average(Start + TimeSpan.FromSeconds(6), TimeSpan.FromSeconds(6))!.Value, 6);
    }

    [Fact]
    public void Old_samples_leave_the_window()
    {
        var window = new ConcurrencyWindow(TimeSpan.FromSeconds(10));
        window.Record(Start, 100);
        Assert.Equal(0, window.Average(Start + TimeSpan.FromSeconds(30), TimeSpan.FromSeconds(10)));
    }
}
