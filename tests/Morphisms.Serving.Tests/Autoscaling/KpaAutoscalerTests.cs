using Microsoft.Extensions.Time.Testing;
using Morphisms.Serving.Autoscaling;

namespace Morphisms.Serving.Tests.Autoscaling;

/// <summary>The KPA algorithm driven second by second with a fake clock.</summary>
public class KpaAutoscalerTests
{
    private readonly FakeTimeProvider _clock = new(DateTimeOffset.Parse("2026-11-22T12:00:00Z", System.Globalization.CultureInfo.InvariantCulture));

    private KpaAutoscaler Create(AutoscalerOptions? options = null) => new(options ?? new AutoscalerOptions(), _clock);

    /// <summary>Records <paramref name="concurrency"/> once a second for <paramref name="seconds"/> and returns the last decision.</summary>
    private ScaleDecision Run(KpaAutoscaler autoscaler, double concurrency, int seconds, ref int ready)
    {
        ScaleDecision decision = null!;
        for (var i = 0; i < seconds; i++)
        {
            autoscaler.Record(concurrency);
            decision = autoscaler.Decide(ready);
            ready = decision.DesiredInstances; // instances come up instantly in this model
            _clock.Advance(TimeSpan.FromSeconds(1));
        }

        return decision;
    }

    [Fact]
    public void Steady_load_gets_ceil_of_concurrency_over_the_utilised_target()
    {
        var autoscaler = Create();
        var ready = 1;
        // Target 100 at 70 % utilisation = 70 per instance: 140 concurrent needs 2, 141 needs 3.
        Assert.Equal(2, Run(autoscaler, 140, 90, ref ready).DesiredInstances);
        Assert.Equal(3, Run(Create(), 141, 90, ref ready).DesiredInstances);
    }

    [Fact]
    public void A_burst_enters_panic_and_panic_never_scales_down_until_a_stable_window_passes()
    {
        var autoscaler = Create();
        var ready = 1;
        Run(autoscaler, 10, 60, ref ready);
        Assert.Equal(1, ready);

        var burst = Run(autoscaler, 700, 6, ref ready);
        Assert.True(burst.Panicking);
        Assert.Equal(10, burst.DesiredInstances); // panic window average reaches 700 / 70

        // Load drops: still panicking, so no scale-down for a whole stable window.
        var calm = Run(autoscaler, 10, 30, ref ready);
        Assert.True(calm.Panicking);
        Assert.Equal(10, calm.DesiredInstances);

        var after = Run(autoscaler, 10, 40, ref ready);
        Assert.False(after.Panicking);
        Assert.True(after.DesiredInstances < 10);
    }

    [Fact]
    public void Panic_provisions_for_the_stable_window_when_its_demand_is_the_larger()
    {
        var autoscaler = Create();

        // A minute at 600 concurrent on 9 instances, then 300 for the panic window: no panic (300 / 70 → 5 of 9).
        for (var i = 0; i < 60; i++)
        {
            autoscaler.Record(600);
            Assert.False(autoscaler.Decide(9).Panicking);
            _clock.Advance(TimeSpan.FromSeconds(1));
        }

        for (var i = 0; i < 6; i++)
        {
            autoscaler.Record(300);
            autoscaler.Decide(9);
            _clock.Advance(TimeSpan.FromSeconds(1));
        }

        // Seven instances die: 5 wanted by the panic window on 2 ready enters panic, but the stable window (about 565
        // concurrent) still asks for 9, and panic takes the larger of the two.
        autoscaler.Record(300);
        var decision = autoscaler.Decide(2);
        Assert.True(decision.Panicking);
        Assert.Equal(9, decision.DesiredInstances);
    }

    [Fact]
    public void Scale_down_is_rate_limited_to_halving_per_decision()
    {
        var autoscaler = Create(new AutoscalerOptions { ScaleToZeroGracePeriod = TimeSpan.Zero });
        var ready = 10;
        autoscaler.Record(0);
        _clock.Advance(TimeSpan.FromSeconds(1));
        var decision = autoscaler.Decide(ready);
        Assert.Equal(5, decision.DesiredInstances);
    }

    [Fact]
    public void Scale_up_is_rate_limited()
    {
        var autoscaler = Create(new AutoscalerOptions { MaxScaleUpRate = 2, StableWindow = TimeSpan.FromSeconds(6) });
        autoscaler.Record(10_000);
        Assert.Equal(2, autoscaler.Decide(1).DesiredInstances);
        Assert.Equal(8, autoscaler.Decide(4).DesiredInstances);
    }

    [Fact]
    public void Scales_to_zero_only_after_the_stable_window_and_the_grace_period()
    {
        var autoscaler = Create(new AutoscalerOptions { ScaleToZeroGracePeriod = TimeSpan.FromSeconds(30) });
        var ready = 1;
        Run(autoscaler, 5, 10, ref ready);
        Assert.Equal(1, ready);

        // The stable average reaches zero only a full window after the last request …
        var quiet = Run(autoscaler, 0, 59, ref ready);
        Assert.Equal(1, quiet.DesiredInstances);
        // … then the grace period keeps the last instance a little longer.
        var grace = Run(autoscaler, 0, 20, ref ready);
        Assert.Equal(1, grace.DesiredInstances);
        Assert.Contains("grace", grace.Reason);

        var zero = Run(autoscaler, 0, 15, ref ready);
        Assert.Equal(0, zero.DesiredInstances);
    }

    [Fact]
    public void Traffic_during_the_grace_period_cancels_scale_to_zero()
    {
        var autoscaler = Create();
        var ready = 1;
        Run(autoscaler, 5, 5, ref ready);
        Run(autoscaler, 0, 75, ref ready);
        Assert.Equal(1, ready);
        var back = Run(autoscaler, 3, 1, ref ready);
        Assert.Equal(1, back.DesiredInstances);
        Run(autoscaler, 0, 70, ref ready);
        Assert.Equal(1, ready); // the grace period started again from the new idle time
    }

    [Fact]
    public void Scale_from_zero_asks_for_at_least_one_instance()
    {
        var autoscaler = Create(new AutoscalerOptions { InitialScale = 0 });
        autoscaler.Record(1);
        Assert.Equal(1, autoscaler.Decide(0).DesiredInstances);
    }

    [Fact]
    public void Min_and_max_scale_bound_every_decision()
    {
        var bounded = Create(new AutoscalerOptions { MinScale = 2, MaxScale = 4 });
        var ready = 2;
        Assert.Equal(4, Run(bounded, 7000, 10, ref ready).DesiredInstances);
        Assert.Equal(2, Run(bounded, 0, 200, ref ready).DesiredInstances);
    }

    [Fact]
    public void Before_any_metric_the_initial_scale_holds()
    {
        var decision = Create(new AutoscalerOptions { InitialScale = 3 }).Decide(0);
        Assert.Equal(3, decision.DesiredInstances);
        Assert.Null(decision.StableConcurrency);
    }

    [Fact]
    public void Without_traffic_the_initial_scale_holds_while_its_instances_are_still_starting()
    {
        // The loop's first decision comes 2 s after the revision starts, long before an attesting instance is ready.
        var autoscaler = Create(new AutoscalerOptions { InitialScale = 1 });
        autoscaler.Record(0);
        _clock.Advance(TimeSpan.FromSeconds(1));
        autoscaler.Record(0);
        _clock.Advance(TimeSpan.FromSeconds(1));
        var decision = autoscaler.Decide(0);
        Assert.Equal(1, decision.DesiredInstances);
        Assert.Contains("initial scale", decision.Reason);
    }

    [Fact]
    public void The_initial_scale_holds_until_reached_once_then_the_load_decides()
    {
        var autoscaler = Create(new AutoscalerOptions { InitialScale = 3 });
        Assert.Equal(3, autoscaler.Decide(0).DesiredInstances);
        for (var ready = 0; ready < 3; ready++)
        {
            autoscaler.Record(0);
            _clock.Advance(TimeSpan.FromSeconds(1));
            Assert.Equal(3, autoscaler.Decide(ready).DesiredInstances);
        }

        // Reached: from now on the (idle) load decides, at most halving per decision.
        autoscaler.Record(0);
        Assert.Equal(1, autoscaler.Decide(3).DesiredInstances);
    }

    [Fact]
    public void A_revision_never_ready_goes_to_zero_after_the_progress_deadline()
    {
        // Its app exits at once, so no instance is ever ready: the initial scale holds for the 10 min deadline only,
        // then the idle load and the grace period decide, instead of a crash loop until the revision is removed.
        var autoscaler = Create(new AutoscalerOptions { InitialScale = 1 });
        var decision = autoscaler.Decide(0);
        Assert.Equal(1, decision.DesiredInstances);
        for (var elapsed = TimeSpan.Zero; elapsed < TimeSpan.FromMinutes(11); elapsed += TimeSpan.FromSeconds(2))
        {
            autoscaler.Record(0);
            _clock.Advance(TimeSpan.FromSeconds(2));
            decision = autoscaler.Decide(0);
            if (elapsed + TimeSpan.FromSeconds(2) < TimeSpan.FromMinutes(10))
            {
                Assert.Equal(1, decision.DesiredInstances);
            }
        }

        Assert.Equal(0, decision.DesiredInstances);
    }

    [Fact]
    public void An_instance_slower_to_start_than_the_grace_period_still_gets_its_grace_period()
    {
        var autoscaler = Create(new AutoscalerOptions { ScaleToZeroGracePeriod = TimeSpan.FromSeconds(30) });
        for (var second = 0; second < 40; second++)
        {
            autoscaler.Record(0);
            _clock.Advance(TimeSpan.FromSeconds(1));
            Assert.Equal(1, autoscaler.Decide(0).DesiredInstances);
        }

        // Ready at last, and idle: the grace period counts from about now, not from the first decision.
        Assert.Equal(1, autoscaler.Decide(1).DesiredInstances);
        _clock.Advance(TimeSpan.FromSeconds(25));
        Assert.Equal(1, autoscaler.Decide(1).DesiredInstances);
        _clock.Advance(TimeSpan.FromSeconds(10));
        Assert.Equal(0, autoscaler.Decide(1).DesiredInstances);
    }

    [Fact]
    public void During_the_grace_period_an_instance_that_is_not_ready_yet_is_not_taken_away()
    {
        // Reached once, idle, in the grace period: the instance crashes and its replacement is starting.
        var autoscaler = Create(new AutoscalerOptions { ScaleToZeroGracePeriod = TimeSpan.FromSeconds(30) });
        var ready = 1;
        Run(autoscaler, 0, 10, ref ready);
        Assert.Equal(1, ready);
        var decision = autoscaler.Decide(0);
        Assert.Equal(1, decision.DesiredInstances);
        Assert.Contains("grace", decision.Reason);
    }

    [Theory]
    [InlineData("stable window")]
    [InlineData("panic threshold")]
    [InlineData("target utilization")]
    [InlineData("min scale must not exceed")]
    [InlineData("progress deadline")]
    public void Invalid_options_are_refused_naming_the_field(string expected)
    {
        var options = expected switch
        {
            "stable window" => new AutoscalerOptions { StableWindow = TimeSpan.FromSeconds(1) },
            "panic threshold" => new AutoscalerOptions { PanicThresholdPercentage = 100 },
            "target utilization" => new AutoscalerOptions { TargetUtilization = 1.5 },
            "progress deadline" => new AutoscalerOptions { ProgressDeadline = TimeSpan.Zero },
            _ => new AutoscalerOptions { MinScale = 5, MaxScale = 2 },
        };
        var error = Assert.Throws<ArgumentException>(() => new KpaAutoscaler(options, _clock));
        Assert.Contains(expected, error.Message);
    }

    [Fact]
    public void A_wall_clock_stepped_back_changes_no_decision()
    {
        // Two autoscalers under the same load; at 90 s an NTP step sets the second one's wall clock back 5 minutes
        // while the monotonic clock goes on (a FakeTimeProvider's own wall clock cannot go back).
        var steady = Create(new AutoscalerOptions { ScaleToZeroGracePeriod = TimeSpan.FromSeconds(30) });
        var stepped = new SteppedBackClock(_clock);
        var kpa = new KpaAutoscaler(new AutoscalerOptions { ScaleToZeroGracePeriod = TimeSpan.FromSeconds(30) }, stepped);
        int readySteady = 1, readyStepped = 1;
        for (var second = 0; second < 300; second++)
        {
            if (second == 90)
            {
                stepped.StepBack = TimeSpan.FromMinutes(5);
            }

            // Steady load, a burst (panic), then none (panic ends, grace period, zero).
            var load = second < 120 ? 350 : second < 126 ? 1400 : 0;
            steady.Record(load);
            kpa.Record(load);
            var expected = steady.Decide(readySteady);
            var actual = kpa.Decide(readyStepped);
            Assert.True((expected.DesiredInstances, expected.Panicking, expected.StableConcurrency, expected.PanicConcurrency)
                == (actual.DesiredInstances, actual.Panicking, actual.StableConcurrency, actual.PanicConcurrency),
                $"at {second} s: {expected} but with the clock stepped back {actual}");
            readySteady = expected.DesiredInstances;
            readyStepped = actual.DesiredInstances;
            _clock.Advance(TimeSpan.FromSeconds(1));
        }

        Assert.Equal(0, readyStepped);
    }

    /// <summary>A wall clock <see cref="StepBack"/> behind <paramref name="inner"/>'s, whose timestamps it keeps.</summary>
    private sealed class SteppedBackClock(FakeTimeProvider inner) : TimeProvider
    {
        public TimeSpan StepBack { get; set; }

        public override DateTimeOffset GetUtcNow() => inner.GetUtcNow() - StepBack;

        public override long GetTimestamp() => inner.GetTimestamp();

        public override long TimestampFrequency => inner.TimestampFrequency;
    }
}
