namespace Morphisms.Serving.Autoscaling;

/// <summary>
/// Knative's Pod Autoscaler (KPA) algorithm for one revision. It keeps two averages of observed
/// concurrency: over the stable window (default 60 s) for calm decisions, and over the panic window
/// (10 % of it) to react to bursts. When the panic-window demand reaches the panic threshold
/// (200 % of the ready instances) it enters panic mode, in which it only scales up, until a whole
/// stable window passes without another panic condition. Scale-downs are rate limited, and the
/// last instance goes only after the stable average has been zero for the grace period. As in Knative, the initial
/// scale holds until that many instances have been ready once, whatever the load, or until the progress deadline
/// (<see cref="AutoscalerOptions.ProgressDeadline"/>) has passed since the first decision.
/// Its windows and periods run on the monotonic clock (<see cref="TimeProvider.GetTimestamp"/>): a wall clock set back
/// by NTP under load emptied the window, halved the scale and then swung through panic.
/// Not thread-safe: one autoscaler is driven by one loop.
/// </summary>
public sealed class KpaAutoscaler
{
    private readonly AutoscalerOptions _options;
    private readonly TimeProvider _time;
    private readonly ConcurrencyWindow _window;
    private readonly long _started;
    private TimeSpan? _panicSince;
    private int _maxPanicInstances;
    private TimeSpan? _idleSince;
    private TimeSpan? _firstDecision;
    private bool _initialReached;
    private int _lastDesired;

    /// <summary>Creates an autoscaler.</summary>
    /// <exception cref="ArgumentException">The options are invalid; the message names the field.</exception>
    public KpaAutoscaler(AutoscalerOptions options, TimeProvider time)
    {
        if (options.Validate() is { } problem)
        {
            throw new ArgumentException(problem, nameof(options));
        }

        _options = options;
        _time = time;
        _window = new ConcurrencyWindow(options.StableWindow);
        _started = time.GetTimestamp();
    }

    /// <summary>Records the revision's current concurrency (requests in flight, including queued ones at the activator).</summary>
    public void Record(double concurrency) => _window.Record(Now, Math.Max(0, concurrency));

    /// <summary>Decides how many instances the revision should have, given how many are ready now.</summary>
    public ScaleDecision Decide(int readyInstances)
    {
        // Until the initial scale has been ready once, what is not ready yet is still starting (attesting, for seconds):
        // without traffic the first decision would otherwise see none ready and drain them before they ever served.
        // A revision that never gets there (its app exits at once, its login is refused) would otherwise crash-loop,
        // attesting each time, until it is removed: past the progress deadline the initial scale counts as reached.
        var initial = _options.InitialInstances;
        _firstDecision ??= Now;
        _initialReached |= readyInstances >= initial || Now - _firstDecision.Value >= _options.ProgressDeadline;
        var decision = DecideOnLoad(readyInstances);
        if (!_initialReached && decision.DesiredInstances < initial)
        {
            decision = decision with { DesiredInstances = initial, Reason = $"initial scale {initial} not reached yet ({readyInstances} ready)" };
        }

        _lastDesired = decision.DesiredInstances;
        return decision;
    }

    private ScaleDecision DecideOnLoad(int readyInstances)
    {
        var now = Now;
        var stable = _window.Average(now, _options.StableWindow);
        var panic = _window.Average(now, _options.PanicWindow);
        if (stable is null || panic is null)
        {
            return new ScaleDecision(Clamp(Math.Max(readyInstances, _options.InitialScale)), false, null, null, "no metrics yet: initial scale");
        }

        // Rates and the panic ratio are relative to at least one instance, so scaling from zero works.
        var ready = Math.Max(1, readyInstances);
        var maxUp = (int)Math.Ceiling(_options.MaxScaleUpRate * ready);
        var maxDown = (int)Math.Floor(ready / _options.MaxScaleDownRate);
        var stableWant = Math.Clamp((int)Math.Ceiling(stable.Value / _options.EffectiveTarget), maxDown, maxUp);
        var panicWant = Math.Clamp((int)Math.Ceiling(panic.Value / _options.EffectiveTarget), maxDown, maxUp);
        var overThreshold = (double)panicWant / ready >= _options.PanicThresholdPercentage / 100;

        if (overThreshold)
        {
            _panicSince = now; // entering, or extending: panic lasts a stable window past the last burst
        }
        else if (_panicSince is { } since && now - since >= _options.StableWindow)
        {
            _panicSince = null;
            _maxPanicInstances = 0;
        }

        int desired;
        string reason;
        if (_panicSince is not null)
        {
            // In panic mode the revision never scales down. The stable window counts too, as in Knative: demand from
            // before the panic (instances lost since, say) can leave it above the panic window's.
            _maxPanicInstances = Math.Max(_maxPanicInstances, Math.Max(Math.Max(panicWant, stableWant), readyInstances));
            desired = _maxPanicInstances;
            reason = $"panic: {panic.Value:0.##} concurrent over {_options.PanicWindow.TotalSeconds:0.#}s";
        }
        else
        {
            desired = stableWant;
            reason = $"stable: {stable.Value:0.##} concurrent over {_options.StableWindow.TotalSeconds:0}s, target {_options.EffectiveTarget:0.##} per instance";
        }

        if (desired == 0)
        {
            // The idle time counts from when the initial instances are up, so they get a whole grace period too.
            _idleSince = _initialReached ? _idleSince ?? now : now;
            if (now - _idleSince.Value < _options.ScaleToZeroGracePeriod)
            {
                // Nor below the last decision: an instance asked for then may be starting (a crashed one's replacement),
                // and not being ready yet does not make it surplus.
                desired = Math.Min(1, Math.Max(readyInstances, _lastDesired));
                reason = $"idle, scale-to-zero grace period until {_time.GetUtcNow() + (_idleSince.Value + _options.ScaleToZeroGracePeriod - now):HH:mm:ss}";
            }
            else
            {
                reason = "idle for the stable window and the grace period: scale to zero";
            }
        }
        else
        {
            _idleSince = null;
        }

        return new ScaleDecision(Clamp(desired), _panicSince is not null, stable, panic, reason);
    }

    // Monotonic: time elapsed since this autoscaler was made.
    private TimeSpan Now => _time.GetElapsedTime(_started);

    private int Clamp(int desired)
    {
        var atLeast = Math.Max(desired, _options.MinScale);
        return _options.MaxScale > 0 ? Math.Min(atLeast, _options.MaxScale) : atLeast;
    }
}
