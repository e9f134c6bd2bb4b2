using Morphisms.Serving.Activation;
using Morphisms.Serving.Revisions;

namespace Morphisms.Serving.Runtime;

/// <summary>
/// Keeps a revision at the instance count the autoscaler asks for, plus its warm pool: starts instances,
/// publishes the ready ones to <see cref="RevisionInstances"/> (which releases requests held by the activator),
/// promotes pre-attested standbys first when scaling up, drains the surplus on scale-down (unpublished first, then
/// SIGTERM, wait, SIGKILL),
/// and replaces crashed instances after an exponential backoff.
/// </summary>
public sealed class RevisionSupervisor : IAsyncDisposable
{
    private readonly Revision _revision;
    private readonly IInstanceLauncher _launcher;
    private readonly RevisionInstances _instances;
    private readonly SupervisorOptions _options;
    private readonly TimeProvider _time;
    private readonly Action<string> _log;
    private readonly Action<Revision, IInstanceProcess>? _onReady;
    private readonly Lock _gate = new();
    private readonly List<Managed> _managed = [];
    private readonly List<Task> _draining = [];
    private readonly LogRing _history;
    private readonly TaskCompletionSource<bool> _firstReady = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private int _desired;
    private int _sequence;
    private int _crashes;
    private DateTimeOffset _launchNotBefore;
    private ITimer? _retry;
    private bool _disposed;
    private bool _started;

    /// <summary>Creates a supervisor with no instances; <see cref="ScaleTo"/> starts them.</summary>
    public RevisionSupervisor(Revision revision, IInstanceLauncher launcher, RevisionInstances instances, SupervisorOptions options, TimeProvider time, Action<string> log, Action<Revision, IInstanceProcess>? onReady = null)
    {
        _revision = revision;
        _launcher = launcher;
        _instances = instances;
        _options = options;
        _time = time;
        _log = log;
        _onReady = onReady;
        _history = new LogRing(1000);
        WarmPool = revision.Spec.Scale.WarmPool;
    }

    /// <summary>The revision supervised.</summary>
    public Revision Revision => _revision;

    /// <summary>Standby instances to keep (pre-attested, not routed).</summary>
    public int WarmPool { get; }

    /// <summary>The instance count asked for.</summary>
    public int Desired
    {
        get
        {
            lock (_gate)
            {
                return _desired;
            }
        }
    }

    /// <summary>
    /// Completes with true once an instance of this run has first been ready and routed (started ready or promoted from
    /// the warm pool), or with false when the supervisor is disposed before that. The host moves traffic to a new
    /// revision only then (Knative routes to the latest ready revision), so a revision that never gets ready never
    /// takes the function's traffic.
    /// </summary>
    public Task<bool> FirstReady => _firstReady.Task;

    /// <summary>Crashes since the supervisor started.</summary>
    public int TotalCrashes { get; private set; }

    /// <summary>Instances per state.</summary>
    public IReadOnlyDictionary<InstanceState, int> Counts()
    {
        lock (_gate)
        {
            return Enum.GetValues<InstanceState>().ToDictionary(s => s, s => _managed.Count(m => m.State == s));
        }
    }

    /// <summary>Ready (routed) instances.</summary>
    public int ReadyCount
    {
        get
        {
            lock (_gate)
            {
                return _managed.Count(m => m.State == InstanceState.Ready);
            }
        }
    }

    /// <summary>All live instances with their state, for logs and listings.</summary>
    public IReadOnlyList<(IInstanceProcess Process, InstanceState State)> Snapshot()
    {
        lock (_gate)
        {
            return _managed.Select(m => (m.Process, m.State)).ToList();
        }
    }

    /// <summary>The supervisor's own notes (starts, crashes, drains) for <c>morph logs</c>.</summary>
    public LogRing History => _history;

    /// <summary>Asks for <paramref name="desired"/> routed instances.</summary>
    public void ScaleTo(int desired)
    {
        lock (_gate)
        {
            // The first call always reconciles: it also starts the warm pool of a revision created at zero.
            if (_disposed || (desired == _desired && _started))
            {
                return;
            }

            _started = true;

            Note($"scale {_desired} -> {desired}");
            _desired = Math.Max(0, desired);
        }

        Reconcile();
    }

    /// <summary>Drains every instance.</summary>
    public async ValueTask DisposeAsync()
    {
        List<Task> stopping;
        lock (_gate)
        {
            _disposed = true;
            _desired = 0;
            _retry?.Dispose();
            foreach (var managed in _managed.Where(m => m.State != InstanceState.Draining).ToList())
            {
                DrainLocked(managed, "revision removed");
            }

            stopping = [.. _draining];
        }

        // Whoever waits for the first ready instance hears that none will come from this run.
        _firstReady.TrySetResult(false);
        Publish();
        await Task.WhenAll(stopping).ConfigureAwait(false);
    }

    private void Reconcile()
    {
        lock (_gate)
        {
            if (_disposed)
            {
                return;
            }

            var active = _managed.Count(m => m.State is InstanceState.Starting or InstanceState.Ready);

            // Scale up: promote ready standbys, then starting standbys, then launch new ones.
            foreach (var state in new[] { InstanceState.Standby, InstanceState.StandbyStarting })
            {
                foreach (var standby in _managed.Where(m => m.State == state).ToList())
                {
                    if (active >= _desired)
                    {
                        break;
                    }

                    standby.State = state == InstanceState.Standby ? InstanceState.Ready : InstanceState.Starting;
                    Note($"{standby.Process.Id}: promoted from the warm pool");
                    active++;
                }
            }

            // Scale down: starting ones first (they serve nobody yet), then the newest ready ones.
            var surplus = _managed.Where(m => m.State is InstanceState.Starting or InstanceState.Ready)
                .OrderBy(m => m.State == InstanceState.Ready ? 1 : 0).ThenByDescending(m => m.Sequence).ToList();
            for (var i = 0; active > _desired && i < surplus.Count; i++, active--)
            {
                DrainLocked(surplus[i], "scale down");
            }

            var standbys = _managed.Count(m => m.State is InstanceState.Standby or InstanceState.StandbyStarting);
            foreach (var extra in _managed.Where(m => m.State is InstanceState.StandbyStarting or InstanceState.Standby).Skip(WarmPool).ToList())
            {
                DrainLocked(extra, "warm pool shrunk");
                standbys--;
            }

            if (_time.GetUtcNow() < _launchNotBefore && (active < _desired || standbys < WarmPool))
            {
                // Crash backoff: try again when it expires.
                RetryAfterBackoffLocked();
            }
            else
            {
                var launched = true;
                for (; launched && active < _desired; active++)
                {
                    launched = LaunchLocked(InstanceState.Starting);
                }

                for (; launched && standbys < WarmPool; standbys++)
                {
                    launched = LaunchLocked(InstanceState.StandbyStarting);
                }

                if (!launched)
                {
                    // A refused launch (fork EAGAIN, a full disk, ...) is retried like a crash: nothing else would ask
                    // again, since the autoscaler re-asks only when its count changes. The rest wait for the retry too,
                    // rather than each doubling the backoff in this one pass.
                    RetryAfterBackoffLocked();
                }
            }
        }

        Publish();
    }

    private void RetryAfterBackoffLocked()
    {
        _retry?.Dispose();
        _retry = _time.CreateTimer(_ => Reconcile(), null, TimeSpan.FromTicks(Math.Max(0, (_launchNotBefore - _time.GetUtcNow()).Ticks)), Timeout.InfiniteTimeSpan);
    }

    /// <returns>False when the launch was refused (noted, and the backoff set).</returns>
    private bool LaunchLocked(InstanceState state)
    {
        var id = $"{_revision.Name}-{++_sequence:D3}";
        IInstanceProcess process;
        try
        {
            process = _launcher.Launch(_revision, id);
        }
        catch (Exception e)
        {
            // Whatever the launcher throws (UnauthorizedAccessException from a directory, a socket error from a port,
            // a refusal) is this revision's failure, retried after the backoff: thrown on, it would reach the
            // autoscaler's or the retry's timer callback and take the whole host down.
            Note($"{id}: could not start: {e.Message}");
            BackoffLocked();
            return false;
        }

        var managed = new Managed(process, state, _sequence);
        _managed.Add(managed);
        Note($"{id}: starting{(state == InstanceState.StandbyStarting ? " (warm pool)" : "")}");
        _ = WatchAsync(managed);
        return true;
    }

    private async Task WatchAsync(Managed managed)
    {
        var process = managed.Process;
        try
        {
            await process.Ready.WaitAsync(_options.ReadyTimeout, _time).ConfigureAwait(false);
            lock (_gate)
            {
                managed.ReadySince = _time.GetUtcNow();
                if (managed.State == InstanceState.Starting)
                {
                    managed.State = InstanceState.Ready;
                }
                else if (managed.State == InstanceState.StandbyStarting)
                {
                    managed.State = InstanceState.Standby;
                }

                Note($"{process.Id}: ready ({managed.State})");
            }

            _onReady?.Invoke(_revision, process);
            Publish();
        }
        catch (Exception e)
        {
            Note($"{process.Id}: not ready: {e.Message}");
            if (e is TimeoutException)
            {
                _ = process.StopAsync(TimeSpan.Zero);
            }
        }

        var code = await process.Exited.ConfigureAwait(false);

        // Keep the tail of a gone instance's output: after a crash that is what `morph logs` is for.
        foreach (var line in process.Logs.Snapshot().TakeLast(50))
        {
            _history.Add(line.Time, line.Stream, $"[{process.Id}] {line.Text}");
        }

        bool restart;
        lock (_gate)
        {
            _managed.Remove(managed);
            restart = managed.State != InstanceState.Draining && !_disposed;
            if (restart)
            {
                TotalCrashes++;
                if (managed.ReadySince is { } since && _time.GetUtcNow() - since >= _options.BackoffReset)
                {
                    _crashes = 0; // it was healthy for a while: not a crash loop
                }

                Note($"{process.Id}: exited unexpectedly (code {code}); replacing it");
                BackoffLocked();
            }
        }

        Publish();
        await process.DisposeAsync().ConfigureAwait(false);
        if (restart)
        {
            Reconcile();
        }
    }

    private void BackoffLocked()
    {
        var delay = TimeSpan.FromTicks(Math.Min(_options.MaxRestartBackoff.Ticks, _options.RestartBackoff.Ticks << Math.Min(_crashes, 20)));
        _crashes++;
        _launchNotBefore = _time.GetUtcNow() + delay;
        Note($"restart backoff {delay.TotalSeconds:0.###}s");
    }

    private void DrainLocked(Managed managed, string why)
    {
        managed.State = InstanceState.Draining;
        Note($"{managed.Process.Id}: draining ({why})");

        // Out of the published set before it is signalled: a plain app (tee: none) may exit at SIGTERM at once, and
        // every request the gateway still sent it meanwhile (a new one, or one on a pooled keep-alive connection) failed
        // with a 502. The agent of a confidential instance drains in any case; it too gets no new connections this way.
        PublishLocked();
        var stop = managed.Process.StopAsync(_options.DrainTimeout);
        _draining.Add(stop);
        _ = stop.ContinueWith(t =>
        {
            lock (_gate)
            {
                _draining.Remove(t);
            }
        }, TaskScheduler.Default);
    }

    private void Publish()
    {
        // Under the lock, so two publishes cannot overtake each other and leave a stale set of endpoints.
        lock (_gate)
        {
            PublishLocked();
        }
    }

    private void PublishLocked()
    {
        var ready = _managed.Where(m => m.State == InstanceState.Ready)
            .Select(m => _options.PublishTlsEndpoints ? m.Process.TlsEndpoint ?? m.Process.AppEndpoint : m.Process.AppEndpoint)
            .ToList();
        _instances.SetReady(_revision.Name, ready);

        // Every instance that becomes ready (started, or a standby promoted) is published here, after the endpoints:
        // a route moved on this signal finds them. Not after disposal, which completed it with false already.
        if (ready.Count > 0)
        {
            _firstReady.TrySetResult(true);
        }
    }

    private void Note(string text)
    {
        _history.Add(_time.GetUtcNow(), "runtime", text);
        _log($"{_revision.Name}: {text}");
    }

    private sealed class Managed(IInstanceProcess process, InstanceState state, int sequence)
    {
        public IInstanceProcess Process { get; } = process;

        public InstanceState State { get; set; } = state;

        public int Sequence { get; } = sequence;

        public DateTimeOffset? ReadySince { get; set; }
    }
}
