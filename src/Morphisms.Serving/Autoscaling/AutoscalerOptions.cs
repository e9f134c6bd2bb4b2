namespace Morphisms.Serving.Autoscaling;

/// <summary>
/// Knative KPA settings for one revision. Defaults are Knative's: a 60 s stable window, a panic
/// window of 10 % of it, a 200 % panic threshold, a concurrency target of 100 used at 70 %, scale
/// up at most 1000× and down at most 2× per decision, a 30 s grace period before scaling to zero, and a 10 min
/// progress deadline for the initial scale.
/// </summary>
public sealed record AutoscalerOptions
{
    /// <summary>The shortest stable window (Knative's bound).</summary>
    public static readonly TimeSpan MinStableWindow = TimeSpan.FromSeconds(6);

    /// <summary>The longest stable window (Knative's bound).</summary>
    public static readonly TimeSpan MaxStableWindow = TimeSpan.FromHours(1);

    /// <summary>The longest scale-to-zero grace period: a revision meant to stay up is what <see cref="MinScale"/> is for.</summary>
    public static readonly TimeSpan MaxScaleToZeroGracePeriod = TimeSpan.FromHours(1);

    /// <summary>Window over which the stable (non-panic) average concurrency is taken.</summary>
    public TimeSpan StableWindow { get; init; } = TimeSpan.FromSeconds(60);

    /// <summary>Panic window as a percentage of the stable window (Knative: 10).</summary>
    public double PanicWindowPercentage { get; init; } = 10;

    /// <summary>Enter panic when the panic-window demand reaches this percentage of the ready instances (Knative: 200).</summary>
    public double PanicThresholdPercentage { get; init; } = 200;

    /// <summary>Concurrent requests one instance should handle (Knative's container-concurrency-target-default).</summary>
    public double TargetConcurrency { get; init; } = 100;

    /// <summary>Fraction of <see cref="TargetConcurrency"/> to aim for, leaving headroom for bursts.</summary>
    public double TargetUtilization { get; init; } = 0.7;

    /// <summary>A decision may multiply the ready instances by at most this much.</summary>
    public double MaxScaleUpRate { get; init; } = 1000;

    /// <summary>A decision may divide the ready instances by at most this much.</summary>
    public double MaxScaleDownRate { get; init; } = 2;

    /// <summary>How long a revision stays at one instance without traffic before it may go to zero.</summary>
    public TimeSpan ScaleToZeroGracePeriod { get; init; } = TimeSpan.FromSeconds(30);

    /// <summary>Lower bound on instances; 0 allows scale to zero.</summary>
    public int MinScale { get; init; }

    /// <summary>Upper bound on instances; 0 means unbounded.</summary>
    public int MaxScale { get; init; }

    /// <summary>Instances to start with when the revision is created.</summary>
    public int InitialScale { get; init; } = 1;

    /// <summary>
    /// How long, from the revision's first decision, <see cref="InitialScale"/> holds while its instances have not all been
    /// ready once (Knative's progress-deadline, 600 s). After it the load decides as usual, scale to zero included, so a
    /// revision that never gets ready (its app exits at once, its login is refused) stops crash-looping.
    /// </summary>
    public TimeSpan ProgressDeadline { get; init; } = TimeSpan.FromMinutes(10);

    /// <summary>
    /// The instances a new revision starts with: <see cref="InitialScale"/> within <see cref="MinScale"/> and
    /// <see cref="MaxScale"/>, what <see cref="KpaAutoscaler"/> holds it at until they have been ready. Zero means the
    /// revision starts with none (Knative's zero initial scale), so there is no first instance to wait for.
    /// </summary>
    public int InitialInstances
    {
        get
        {
            var atLeast = Math.Max(InitialScale, MinScale);
            return MaxScale > 0 ? Math.Min(atLeast, MaxScale) : atLeast;
        }
    }

    /// <summary>The panic window's length.</summary>
    public TimeSpan PanicWindow => TimeSpan.FromTicks((long)(StableWindow.Ticks * PanicWindowPercentage / 100));

    /// <summary>The concurrency each instance is actually asked to carry.</summary>
    public double EffectiveTarget => TargetConcurrency * TargetUtilization;

    /// <summary>Checks the settings; returns the first problem, naming the field, or null.</summary>
    public string? Validate() =>
        StableWindow < MinStableWindow || StableWindow > MaxStableWindow ? "stable window must be between 6s and 1h"
        : PanicWindowPercentage is < 1 or > 100 ? "panic window percentage must be between 1 and 100"
        : PanicThresholdPercentage is < 110 or > 1000 ? "panic threshold percentage must be between 110 and 1000"
        : !(TargetConcurrency > 0) || double.IsInfinity(TargetConcurrency) ? "target concurrency must be positive and finite"
        : !(TargetUtilization is > 0 and <= 1) ? "target utilization must be in (0, 1]"
        : MaxScaleUpRate <= 1 ? "max scale-up rate must be greater than 1"
        : MaxScaleDownRate <= 1 ? "max scale-down rate must be greater than 1"
        : ScaleToZeroGracePeriod < TimeSpan.Zero || ScaleToZeroGracePeriod > MaxScaleToZeroGracePeriod ? "scale-to-zero grace period must be between 0s and 1h"
        : MinScale < 0 ? "min scale must not be negative"
        : MaxScale < 0 ? "max scale must not be negative"
        : MaxScale > 0 && MinScale > MaxScale ? "min scale must not exceed max scale"
        : InitialScale < 0 ? "initial scale must not be negative"
        : ProgressDeadline <= TimeSpan.Zero ? "progress deadline must be positive"
        : null;
}
