using Morphisms.Serving.Activation;
using Morphisms.Serving.Gateway;
using Morphisms.Serving.Runtime;

namespace Morphisms.Serving.Autoscaling;

/// <summary>
/// Drives one revision's <see cref="KpaAutoscaler"/>: every <see cref="SampleInterval"/> it records the revision's
/// concurrency (requests in flight at the gateway, which in passthrough mode are the connections serving one now,
/// see <see cref="RevisionConcurrency"/>, plus requests held by the activator), and every
/// <see cref="DecideInterval"/> it decides and tells the <see cref="RevisionSupervisor"/>. A poke from the activator
/// (a request for a revision with no ready instance) scales to one at once instead of waiting for the tick, and
/// counts as demand at the next sample so the autoscaler does not take the instance straight away again.
/// Sampling every second matters: the KPA's windows average per-second buckets and count empty seconds as zero.
/// </summary>
public sealed class AutoscalerLoop : IScaleFromZeroTrigger, IAsyncDisposable
{
    /// <summary>How often concurrency is sampled.</summary>
    public static readonly TimeSpan SampleInterval = TimeSpan.FromSeconds(1);

    /// <summary>How often the autoscaler decides (Knative's tick is 2 s).</summary>
    public static readonly TimeSpan DecideInterval = TimeSpan.FromSeconds(2);

    private readonly KpaAutoscaler _kpa;
    private readonly string _revision;
    private readonly RevisionConcurrency _concurrency;
    private readonly RevisionInstances _instances;
    private readonly RevisionSupervisor _supervisor;
    private readonly Lock _gate = new();
    private readonly ITimer _timer;
    private int _pokedDemand;
    private long _ticks;

    /// <summary>Starts the loop; the initial decision (initial scale) is applied at once.</summary>
    public AutoscalerLoop(AutoscalerOptions options, RevisionConcurrency concurrency, RevisionInstances instances, RevisionSupervisor supervisor, TimeProvider time)
    {
        _kpa = new KpaAutoscaler(options, time);
        _revision = supervisor.Revision.Name;
        _concurrency = concurrency;
        _instances = instances;
        _supervisor = supervisor;
        Apply(_kpa.Decide(0));
        _timer = time.CreateTimer(_ => Tick(), null, SampleInterval, SampleInterval);
    }

    /// <summary>The latest decision.</summary>
    public ScaleDecision? Last { get; private set; }

    /// <summary>Builds the KPA settings of a spec's scale block.</summary>
    public static AutoscalerOptions OptionsFor(Spec.ScaleSpec scale) => new()
    {
        StableWindow = scale.StableWindow,
        ScaleToZeroGracePeriod = scale.ScaleToZeroGracePeriod,
        TargetConcurrency = scale.Target,
        TargetUtilization = scale.TargetUtilization,
        MinScale = scale.Min,
        MaxScale = scale.Max,
        InitialScale = scale.Initial,
    };

    /// <inheritdoc />
    public void Poke(string revision, int queued)
    {
        lock (_gate)
        {
            _pokedDemand = Math.Max(_pokedDemand, queued);
        }

        if (_supervisor.Desired == 0)
        {
            _supervisor.ScaleTo(1);
        }
    }

    /// <inheritdoc />
    public ValueTask DisposeAsync()
    {
        _timer.Dispose();
        return ValueTask.CompletedTask;
    }

    /// <summary>One sample (and, every other time, one decision); public so fake-clock tests can drive it directly.</summary>
    internal void Tick()
    {
        lock (_gate)
        {
            var observed = _concurrency.Current(_revision) + _instances.Queued(_revision);
            _kpa.Record(Math.Max(observed, _pokedDemand));
            _pokedDemand = 0;
            if (++_ticks % (DecideInterval.Ticks / SampleInterval.Ticks) == 0)
            {
                Apply(_kpa.Decide(_supervisor.ReadyCount));
            }
        }
    }

    private void Apply(ScaleDecision decision)
    {
        Last = decision;

        // While a poke's instance is still starting the KPA sees zero ready; never undercut what is already asked for
        // with a "zero" caused only by the instance not being ready yet.
        var desired = decision.DesiredInstances;
        if (desired == 0 && _instances.Queued(_revision) > 0)
        {
            desired = 1;
        }

        _supervisor.ScaleTo(desired);
    }
}
