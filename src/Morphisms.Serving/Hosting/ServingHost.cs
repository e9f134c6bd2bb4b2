using System.Collections.Concurrent;
using System.Net;
using Morphisms.Attestation.Simulated;
using Morphisms.Serving.Activation;
using Morphisms.Serving.Autoscaling;
using Morphisms.Serving.Gateway;
using Morphisms.Serving.Metrics;
using Morphisms.Serving.Revisions;
using Morphisms.Serving.Routing;
using Morphisms.Serving.Runtime;
using Morphisms.Serving.Spec;

namespace Morphisms.Serving.Hosting;

/// <summary>
/// The serving layer in one object: route table, activator, gateway (SNI passthrough or HTTP mode), one autoscaler
/// loop and one supervisor per routed revision, the local runtime, the KMS registrar and the control API.
/// Everything here is untrusted in the design's sense — it starts and stops instances and moves ciphertext — so
/// nothing here holds a function's key or secret. <c>morph up</c> can run it in-process.
/// </summary>
public sealed partial class ServingHost : IAsyncDisposable
{
    private readonly ServingHostOptions _options;
    private readonly SemaphoreSlim _changes = new(1, 1);
    private readonly ConcurrentDictionary<string, FunctionEntry> _functions = new(StringComparer.Ordinal);
    private readonly ConcurrentDictionary<string, Running> _running = new(StringComparer.Ordinal);
    // One per function name, taken before _changes and held by a deploy or traffic change until its route is decided,
    // through the wait for a new revision's first ready instance (which _changes is not held for: every other function
    // and rm go on meanwhile). So two changes of one function apply in the order they came, never interleaved into a
    // route neither asked for. Never disposed: a SemaphoreSlim whose wait handle is never asked for holds nothing to free.
    private readonly ConcurrentDictionary<string, SemaphoreSlim> _functionGates = new(StringComparer.Ordinal);
    // Cancelled as the host starts stopping: a change waiting for a revision's first ready instance ends its wait then,
    // so the control API's own stop does not wait out that request (up to the progress deadline). Never disposed: a
    // waiting change may still link to it.
    private readonly CancellationTokenSource _stoppingSource = new();
    // The last revision number of each removed function, so a redeploy numbers on (as Knative never reuses a revision
    // name): a name then always means one code, in logs, metrics and whatever still holds it. An int per name removed.
    private readonly ConcurrentDictionary<string, int> _removedGenerations = new(StringComparer.Ordinal);
    private readonly TextWriter _log;
    private readonly Lock _logGate = new();
    private IInstanceLauncher? _launcher;
    private KmsRegistrar? _registrar;
    private SniPassthroughGateway? _sni;
    private HttpModeGateway? _http;
    private ControlApi? _control;
    private int _stopping;

    /// <summary>Creates the host; <see cref="StartAsync"/> brings it up.</summary>
    public ServingHost(ServingHostOptions options)
    {
        _options = options;
        _log = options.Log ?? Console.Error;
        Resolver = new ActivatingBackendResolver(Routes, Instances, new Trigger(this), options.Activator, options.Time);
        Metrics.Gauges = Gauges;
    }

    /// <summary>The routes.</summary>
    public RouteTable Routes { get; } = new();

    /// <summary>Ready instances per revision and the requests the activator holds.</summary>
    public RevisionInstances Instances { get; } = new();

    /// <summary>In-flight requests per revision.</summary>
    public RevisionConcurrency Concurrency { get; } = new();

    /// <summary>Prometheus metrics.</summary>
    public ServingMetrics Metrics { get; } = new();

    /// <summary>The activator (the gateways' resolver).</summary>
    public ActivatingBackendResolver Resolver { get; }

    /// <summary>The confidential gateway (null in HTTP mode). It has no certificate and no key.</summary>
    public SniPassthroughGateway? SniGateway => _sni;

    /// <summary>The HTTP-mode gateway (null in confidential mode).</summary>
    public HttpModeGateway? HttpGateway => _http;

    /// <summary>The gateway's bound address.</summary>
    public IPEndPoint GatewayEndPoint => _sni?.LocalEndPoint ?? _http?.LocalEndPoint ?? throw new InvalidOperationException("not started");

    /// <summary>The control API's base URL.</summary>
    public Uri ControlUrl => _control?.Url ?? throw new InvalidOperationException("not started");

    /// <summary>
    /// The control API's bearer token, new for every host (so at every start): in-process callers take it from here, local ones from
    /// <see cref="ServingHostOptions.ControlTokenFile"/>. Whoever holds this host can deploy through it anyway.
    /// </summary>
    public BearerToken ControlToken { get; } = BearerToken.New();

    /// <summary>
    /// The token that opens <c>GET /metrics</c> only (as does <see cref="ControlToken"/>), new for every host; local
    /// scrapers read it from <see cref="ServingHostOptions.MetricsTokenFile"/>.
    /// </summary>
    public BearerToken MetricsToken { get; } = BearerToken.New();

    /// <summary>The options.</summary>
    public ServingHostOptions Options => _options;

    /// <summary>Writes the control token file, starts the control API, the runtime and the gateway, then writes the state file.</summary>
    public async Task StartAsync(CancellationToken ct)
    {
        // Before the API listens: a token file that cannot be written stops the start with nothing left running.
        if (_options.ControlTokenFile is { } tokenFile)
        {
            ControlToken.WriteFile(tokenFile);
        }

        if (_options.MetricsTokenFile is { } metricsFile)
        {
            MetricsToken.WriteFile(metricsFile);
        }

        _control = await ControlApi.StartAsync(this, _options.ControlListen, new ControlApiTokens(ControlToken, MetricsToken), ct).ConfigureAwait(false);
        _registrar = _options.Kms is { } kms ? new KmsRegistrar(kms, _options.Time) : null;
        var runtime = _options.Runtime ?? new RuntimeOptions { DataDirectory = _options.DataDirectory };
        _launcher = _options.Launcher ?? new ProcessInstanceLauncher(runtime with
        {
            DataDirectory = _options.DataDirectory,
            KmsUrl = _options.Kms?.Url,
            KmsCaSha256 = _options.Kms?.CaSha256,
            SimulatedTeeDirectory = _options.SimulatedTeeDirectory,
            ReportUrl = _control.Url,

            ProtectedPaths = [.. runtime.ProtectedPaths, .. TokenDirectories()],
        }, _options.Time, Log);
        var observer = new Observer(Metrics);
        if (_options.Mode == GatewayMode.Confidential)
        {
            _sni = new SniPassthroughGateway(new SniGatewayOptions { Listen = _options.GatewayListen, Time = _options.Time, Log = Log }, Resolver, Concurrency, observer);
            _sni.Start();
            Log($"gateway: confidential (SNI passthrough, no certificate, no key) on {_sni.LocalEndPoint}");
        }
        else
        {
            _http = new HttpModeGateway(new HttpGatewayOptions { Listen = _options.GatewayListen, Certificate = _options.HttpGatewayCertificate, Warnings = _log }, Resolver, Concurrency, observer);
            await _http.StartAsync(ct).ConfigureAwait(false);
            Log($"gateway: HTTP MODE, NOT CONFIDENTIAL, on {_http.LocalEndPoint}");
        }

        Log($"control API on {_control.Url}");
        if (_options.StateFile is { } stateFile)
        {
            new ServingStateFile(_control.Url.ToString(), GatewayEndPoint.ToString(), _options.Mode == GatewayMode.Confidential ? "confidential" : "http", Environment.ProcessId,
                _options.ControlTokenFile is { } written ? Path.GetFullPath(written) : null,
                _options.MetricsTokenFile is { } metrics ? Path.GetFullPath(metrics) : null).Write(stateFile);
        }
    }

    // SNP and TDX attest the whole confidential VM this host runs in: every instance in it gets evidence with the same
    // launch measurement and HOST_DATA / MRCONFIGID, so one function's code could log in as another and receive its
    // secrets and certificate. So a VM serves one such function (its revisions); SGX enclaves are measured one by one.
    private void RefuseASecondConfidentialVmFunction(FunctionSpec spec)
    {
        if (spec.Tee is not (FunctionTee.Snp or FunctionTee.Tdx))
        {
            return;
        }

        // Any revision, not only the latest: an earlier one may still serve a traffic share or drain.
        if (_functions.Values.SelectMany(e => e.History.Revisions).Select(r => r.Spec).FirstOrDefault(s => s.Tee is (FunctionTee.Snp or FunctionTee.Tdx) && s.Name != spec.Name) is { } other)
        {
            throw new ServingException($"{spec.Name}: this host already serves {other.Name} with tee: {other.Tee.ToString().ToLowerInvariant()}, and an SNP or TDX report "
                + "describes the whole confidential VM, so the two could not be told apart: serve each such function from a confidential VM of its own");
        }
    }

    // Before anything is made or registered. Tag hosts are TAG-FN.DOMAIN, so one function's tag host can be another's
    // own host (function api's tag canary and the function canary-api) or tag host; the route table refuses a route
    // claiming one, but only after its revisions were started.
    private void RefuseClaimedHosts(string function, IEnumerable<string?> tags)
    {
        foreach (var host in tags.OfType<string>().Select(tag => $"{tag}-{HostOf(function)}").Prepend(HostOf(function)))
        {
            if (Routes.ClaimedBy(host, function) is { } other)
            {
                throw new ServingException($"{function}: the host {host} is already function {other}'s (its own host or a tag's, TAG-FUNCTION.{_options.Domain}): choose another tag or function name");
            }
        }
    }

    /// <summary>Applies a spec: a new revision when it changed, KMS registration, routes and instances.</summary>
    /// <exception cref="ServingException">The spec cannot be served (e.g. <c>tee: none</c> in confidential mode, a scale block the autoscaler refuses, bad traffic).</exception>
    public async Task<DeployResult> DeployAsync(FunctionSpec spec, CancellationToken ct)
    {
        if (spec.Tee == FunctionTee.None && _options.Mode == GatewayMode.Confidential)
        {
            throw new ServingException("tee: none has no TLS terminator; serve it with the HTTP-mode gateway (development only)");
        }

        if (spec.Tee == FunctionTee.Sgx && _options.Mode == GatewayMode.Http)
        {
            // Gramine's TCP is the host's, so the app serves on a UNIX socket inside the instance: no plain port to proxy to.
            throw new ServingException("tee: sgx serves its app on a UNIX socket inside the enclave, which the HTTP-mode gateway cannot reach; serve it with the confidential gateway");
        }

        if (spec.Tee != FunctionTee.None && _options.Kms is null)
        {
            throw new ServingException($"tee: {spec.Tee.ToString().ToLowerInvariant()} needs a KMS; this host has none configured");
        }

        // Before the revision is made and registered: the autoscaler would refuse it only once its revision starts.
        if (AutoscalerLoop.OptionsFor(spec.Scale).Validate() is { } problem)
        {
            throw new ServingException($"scale: {problem}");
        }

        var gate = FunctionGate(spec.Name);
        await gate.WaitAsync(ct).ConfigureAwait(false);
        try
        {
            return await DeployUnderGateAsync(spec, ct).ConfigureAwait(false);
        }
        finally
        {
            gate.Release();
        }
    }

    private async Task<DeployResult> DeployUnderGateAsync(FunctionSpec spec, CancellationToken ct)
    {
        FunctionEntry entry;
        Revision revision;
        bool created;
        string note;
        TrafficPlan plan;
        await EnterChangeAsync(ct).ConfigureAwait(false);
        try
        {
            RefuseASecondConfidentialVmFunction(spec);
            RefuseClaimedHosts(spec.Name, spec.Traffic.Select(t => t.Tag));
            RefuseBadTraffic(spec, _functions.TryGetValue(spec.Name, out var known) ? known.History : null);
            entry = known ?? new FunctionEntry(NewHistory(spec.Name));
            // The simulated TEE's record of the bundle's file digests: a deploy measures the bundle anyway, and what it
            // records spares the revision's instances from digesting it again at launch (they only read it).
            var measured = spec.Tee == FunctionTee.Sim && _options.SimulatedTeeDirectory is { } simulated
                ? SimulatedMeasurementCache.Open(simulated, spec.Bundle)
                : null;
            try
            {
                (revision, created) = entry.History.Apply(spec, _options.Time.GetUtcNow(), _options.Kms?.CaSha256, measured);
            }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException)
            {
                // Measuring reads every file of the bundle: one that cannot be read (a dangling symlink, no permission,
                // changed while it was read) is the spec's problem, and the message names the file.
                throw new ServingException($"bundle: {e.Message}");
            }

            // Only now that it has a revision: an entry without one cannot be listed, so GET /v1/functions would fail.
            _functions[spec.Name] = entry;
            if (measured?.Save() == false)
            {
                Log("the simulated TEE's measurement cache could not be written: instances will digest their bundle at every launch");
            }

            note = "no KMS registration (tee: none)";
            var awaitsApproval = false;
            if (_registrar is not null && spec.Tee != FunctionTee.None)
            {
                try
                {
                    (note, awaitsApproval) = await _registrar.RegisterAsync(entry.History.Revisions, ct).ConfigureAwait(false);
                }
                catch (Exception e) when (e is InvalidOperationException or HttpRequestException || (e is TaskCanceledException && !ct.IsCancellationRequested))
                {
                    // A KMS that times out is a failed registration, not a crash of the control API.
                    throw new ServingException($"KMS registration failed: {e.Message}") { Upstream = true };
                }
            }

            plan = awaitsApproval && entry.Traffic.Count > 0 && RoutesToLatest(spec.Traffic, revision)
                ? KeepTrafficForApproval(entry, revision)
                : await BeginTrafficAsync(entry, spec.Traffic).ConfigureAwait(false);
        }
        finally
        {
            _changes.Release();
        }

        // A new revision that failed to become ready stays in the history (and registered): deploying the same spec
        // again, or `morph traffic`, tries it again.
        Log($"deploy {spec.Name}: {revision.Name}{(created ? " (new)" : " (unchanged)")}; {note}");
        var rollout = plan.Committed ? plan.Outcome : (await FinishTrafficAsync(entry, plan, ct).ConfigureAwait(false)).Rollout;
        // The simulated TEE's evidence is SNP-format: its instances' certificates carry "snp" and this digest.
        var expect = spec.Tee == FunctionTee.Sim ? "snp:" + revision.Measurement : null;
        return new DeployResult(spec.Name, revision.Name, created, HostOf(spec.Name), revision.Measurement, note, expect, rollout);
    }

    /// <summary>Replaces a function's traffic block; returns the function's status as the change left it.</summary>
    /// <exception cref="ServingException">Unknown function or revision, or an invalid split.</exception>
    public async Task<FunctionStatus> SetTrafficAsync(string function, IReadOnlyList<TrafficSpec> traffic, CancellationToken ct)
    {
        FunctionStatus status;
        var gate = FunctionGate(function);
        await gate.WaitAsync(ct).ConfigureAwait(false);
        try
        {
            FunctionEntry entry;
            TrafficPlan plan;
            await EnterChangeAsync(ct).ConfigureAwait(false);
            try
            {
                entry = Entry(function);
                plan = await BeginTrafficAsync(entry, traffic).ConfigureAwait(false);
                // Under the lock: once it is released, an rm may remove the function before the caller could look it up.
                status = Status(entry);
            }
            finally
            {
                _changes.Release();
            }

            if (!plan.Committed)
            {
                (_, status) = await FinishTrafficAsync(entry, plan, ct).ConfigureAwait(false);
            }
        }
        finally
        {
            gate.Release();
        }

        if (AfterTrafficChangeForTests is { } after)
        {
            await after(function).ConfigureAwait(false);
        }

        return status;
    }

    /// <summary>Runs once a traffic change released the lock, before it returns: a test removes the function there.</summary>
    internal Func<string, Task>? AfterTrafficChangeForTests { get; set; }

    /// <summary>
    /// Removes a function: route, instances and its KMS registration. A registration the KMS did not delete does not
    /// undo the rest; the result says why, so the caller can delete it later.
    /// </summary>
    /// <exception cref="ServingException">Unknown function.</exception>
    public async Task<RemoveResult> RemoveAsync(string function, CancellationToken ct)
    {
        await EnterChangeAsync(ct).ConfigureAwait(false);
        try
        {
            var entry = Entry(function);
            Routes.Remove(function);
            foreach (var revision in entry.History.Revisions)
            {
                await StopRevisionAsync(revision.Name, $"function {function} was removed").ConfigureAwait(false);
            }

            _removedGenerations[function] = entry.History.Latest?.Generation ?? _removedGenerations.GetValueOrDefault(function);
            _functions.TryRemove(function, out _);
            string? note = null;
            string? error = null;
            if (_registrar is not null && entry.History.Latest?.Spec.Tee is not (null or FunctionTee.None))
            {
                try
                {
                    note = await _registrar.UnregisterAsync(function, ct).ConfigureAwait(false);
                }
                catch (Exception e) when (e is InvalidOperationException or HttpRequestException || (e is TaskCanceledException && !ct.IsCancellationRequested))
                {
                    // The route and instances are already gone, so this is no failed request; but the registration still
                    // lets the function's code log in, which the caller must hear about, not only this log.
                    error = $"KMS unregistration failed: {e.Message}";
                    Log($"rm {function}: {error}");
                }
            }

            Log(note is null ? $"rm {function}" : $"rm {function}; {note}");
            return new RemoveResult(function, note, error);
        }
        finally
        {
            _changes.Release();
        }
    }

    /// <summary>All functions.</summary>
    public IReadOnlyList<FunctionStatus> List() =>
        _functions.Values.OrderBy(e => e.History.Function, StringComparer.Ordinal).Select(Status).ToList();

    private FunctionStatus Status(FunctionEntry e)
    {
        var latest = e.History.Latest!;
        return new FunctionStatus(e.History.Function, HostOf(e.History.Function), latest.Spec.Tee.ToString().ToLowerInvariant(), latest.Name,
            e.Traffic.Select(t =>
            {
                _running.TryGetValue(t.Revision, out var run);
                var counts = run?.Supervisor.Counts();
                return new TrafficStatus(t.Revision, t.Percent, t.Tag, t.Tag is null ? null : $"{t.Tag}-{HostOf(e.History.Function)}",
                    counts?[InstanceState.Ready] ?? 0, run?.Supervisor.Desired ?? 0, counts?[InstanceState.Standby] ?? 0, run?.Loop.Last?.Reason);
            }).ToList());
    }

    /// <summary>A function's revisions, oldest first.</summary>
    /// <exception cref="ServingException">Unknown function.</exception>
    public IReadOnlyList<RevisionStatus> Revisions(string function)
    {
        var entry = Entry(function);
        return entry.History.Revisions.Select(r =>
        {
            _running.TryGetValue(r.Name, out var run);
            var targets = entry.Traffic.Where(t => t.Revision == r.Name).ToList();
            return new RevisionStatus(r.Name, r.Generation, r.CreatedAt, r.Measurement, r.Spec.Tee.ToString().ToLowerInvariant(),
                targets.Sum(t => t.Percent), targets.Where(t => t.Tag is not null).Select(t => t.Tag!).ToList(),
                run?.Supervisor.ReadyCount ?? 0, run?.Supervisor.TotalCrashes ?? 0);
        }).ToList();
    }

    /// <summary>The last <paramref name="max"/> log lines of a function's instances and supervisors, oldest first.</summary>
    /// <exception cref="ServingException">Unknown function.</exception>
    public IReadOnlyList<(string Source, LogLine Line)> Logs(string function, int max)
    {
        var entry = Entry(function);
        List<(string, LogLine)> lines = [];
        foreach (var revision in entry.History.Revisions)
        {
            if (_running.TryGetValue(revision.Name, out var run))
            {
                lines.AddRange(run.Supervisor.History.Snapshot().Select(l => (revision.Name, l)));
                foreach (var (process, _) in run.Supervisor.Snapshot())
                {
                    lines.AddRange(process.Logs.Snapshot().Select(l => (process.Id, l)));
                }
            }
        }

        return lines.OrderBy(l => l.Item2.Time).TakeLast(Math.Max(1, max)).ToList();
    }

    /// <summary>
    /// The running local instance <paramref name="instanceId"/>, when <paramref name="authorization"/> (an
    /// <c>Authorization</c> header) carries that instance's own report token; null for an unknown instance, a missing
    /// token, or another instance's. Its agent POSTs its cold-start report with it (one more readiness signal).
    /// </summary>
    internal ProcessInstance? ReportingInstance(string instanceId, string? authorization)
    {
        foreach (var run in _running.Values)
        {
            foreach (var (process, _) in run.Supervisor.Snapshot())
            {
                if (process.Id == instanceId && process is ProcessInstance local)
                {
                    return local.IsReportAuthorized(authorization) ? local : null;
                }
            }
        }

        return null;
    }

    /// <summary>The autoscaler loop of a running revision (tests drive it with a fake clock).</summary>
    internal AutoscalerLoop? Loop(string revision) => _running.TryGetValue(revision, out var run) ? run.Loop : null;

    /// <summary>The supervisor of a running revision.</summary>
    public RevisionSupervisor? Supervisor(string revision) => _running.TryGetValue(revision, out var run) ? run.Supervisor : null;

    /// <summary>
    /// Stops the host: the control API first (no new deploys, traffic changes or removals), then the gateways; then it
    /// waits for a change under way to finish and stops every revision. A change that comes after is refused
    /// (<see cref="ServingException.Unavailable"/>), so nothing is started once the revisions were stopped.
    /// </summary>
    public async ValueTask DisposeAsync()
    {
        if (Interlocked.Exchange(ref _stopping, 1) != 0)
        {
            return;
        }

        await _stoppingSource.CancelAsync().ConfigureAwait(false);

        if (_control is not null)
        {
            await _control.DisposeAsync().ConfigureAwait(false);
        }

        if (_sni is not null)
        {
            await _sni.DisposeAsync().ConfigureAwait(false);
        }

        if (_http is not null)
        {
            await _http.DisposeAsync().ConfigureAwait(false);
        }

        // Under the lock: a deploy under way would otherwise start its revision after the ones running now were stopped,
        // and plain-process instances outlive the host.
        await _changes.WaitAsync().ConfigureAwait(false);
        try
        {
            foreach (var revision in _running.Keys.ToList())
            {
                await StopRevisionAsync(revision, "the serving host is stopping").ConfigureAwait(false);
            }
        }
        finally
        {
            _changes.Release();
        }

        _registrar?.Dispose();
        if (_options.StateFile is { } stateFile && ServingStateFile.Read(stateFile)?.Pid == Environment.ProcessId)
        {
            File.Delete(stateFile);
        }

        DeleteTokenFile(_options.ControlTokenFile, ControlToken);
        DeleteTokenFile(_options.MetricsTokenFile, MetricsToken);

        // _changes is not disposed: a change still waiting for it must get the refusal below, not an ObjectDisposedException.
    }

    /// <summary>Takes the lock every change of functions holds; refused once the host is stopping.</summary>
    private async Task EnterChangeAsync(CancellationToken ct)
    {
        await _changes.WaitAsync(ct).ConfigureAwait(false);
        if (Volatile.Read(ref _stopping) != 0)
        {
            _changes.Release();
            throw new ServingException("the serving host is stopping: nothing is deployed, changed or removed any more") { Unavailable = true };
        }
    }

    // The directories of the token files, which no instance may mount: instances share the host's network, and these
    // tokens are all that keeps their code from deploying through (or scraping) the control API.
    private IEnumerable<string> TokenDirectories() =>
        new[] { _options.ControlTokenFile, _options.MetricsTokenFile }.OfType<string>().Select(file => Path.GetDirectoryName(Path.GetFullPath(file))!).Distinct(StringComparer.Ordinal);

    // Only while it still holds this host's token: another host started since on the same data directory owns it now.
    private void DeleteTokenFile(string? tokenFile, BearerToken token)
    {
        if (tokenFile is null)
        {
            return;
        }

        try
        {
            if (File.Exists(tokenFile) && token.Matches(File.ReadAllText(tokenFile).Trim()))
            {
                File.Delete(tokenFile);
            }
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            Log($"the token file {tokenFile} could not be removed: {e.Message}");
        }
    }

    /// <summary>
    /// Checks a deploy's traffic block before its revision is made and registered with the KMS, so a refused block
    /// leaves nothing behind; <see cref="BeginTrafficAsync"/> checks again against the revisions as they then are.
    /// </summary>
    private void RefuseBadTraffic(FunctionSpec spec, RevisionHistory? history)
    {
        if (spec.Traffic.Count == 0)
        {
            return;
        }

        var next = (history ?? NewHistory(spec.Name)).NextName;
        foreach (var target in spec.Traffic.Where(t => t.Revision != "latest" && t.Revision != next))
        {
            if (history?.Find(target.Revision) is null)
            {
                throw new ServingException($"traffic: {spec.Name} has no revision {target.Revision}", notFound: true);
            }
        }

        RouteOf(spec.Name, [.. spec.Traffic.Select(t => new TrafficTarget(t.Revision, t.Percent, t.Tag))]);
    }

    /// <summary>The route of <paramref name="function"/>'s <paramref name="targets"/>; a split it refuses is a 400.</summary>
    private FunctionRoute RouteOf(string function, IReadOnlyList<TrafficTarget> targets)
    {
        try
        {
            return FunctionRoute.Create(function, _options.Domain, targets);
        }
        catch (ArgumentException e)
        {
            throw new ServingException(e.Message);
        }
    }

    private static bool RoutesToLatest(IReadOnlyList<TrafficSpec> traffic, Revision latest) =>
        traffic.Count == 0 || traffic.Any(t => t.Revision == "latest" || t.Revision == latest.Name);

    /// <summary>
    /// A deploy whose new revision cannot log in until the function's owners approve it: waiting for it to be ready would
    /// wait for people, up to the progress deadline, and then give up. The route, its revisions and their instances stay
    /// as they are, the new revision is not started, and the answer says how to move traffic once the update is approved.
    /// </summary>
    private TrafficPlan KeepTrafficForApproval(FunctionEntry entry, Revision latest)
    {
        var function = entry.History.Function;
        Log($"{function}: traffic stays on {Describe(entry.Traffic)} until the owners approve {latest.Name}'s update");
        return new TrafficPlan(entry.Traffic, RouteOf(function, entry.Traffic), [], [])
        {
            Committed = true,
            Outcome = $"kept on {Describe(entry.Traffic)}: {latest.Name} cannot log in until the function's owners approve the update; "
                + $"once they have, 'morph traffic {function} {latest.Name}=100' moves traffic to it when it is ready",
        };
    }

    /// <summary>
    /// Under <see cref="_changes"/> and the function's gate: checks <paramref name="traffic"/>, starts the revisions it
    /// gives a share or a tag, and routes at once unless it moves traffic to a revision that must first show a ready
    /// instance (<see cref="RevisionsToWaitFor"/>); then the plan is left for <see cref="FinishTrafficAsync"/>, and the
    /// function's route, its old revisions and their instances stay as they are.
    /// </summary>
    private async Task<TrafficPlan> BeginTrafficAsync(FunctionEntry entry, IReadOnlyList<TrafficSpec> traffic)
    {
        var latest = entry.History.Latest!;
        var targets = traffic.Count == 0
            ? [new TrafficTarget(latest.Name, 100)]
            : traffic.Select(t => new TrafficTarget(
                t.Revision == "latest" ? latest.Name
                : entry.History.Find(t.Revision)?.Name ?? throw new ServingException($"traffic: {entry.History.Function} has no revision {t.Revision}", notFound: true),
                t.Percent, t.Tag)).ToList();
        var route = RouteOf(entry.History.Function, targets);

        RefuseClaimedHosts(entry.History.Function, targets.Select(t => t.Tag));

        // Instances first, then the route: a request routed to a new revision finds its autoscaler ready to poke.
        List<string> started = [];
        foreach (var name in Wanted(targets).Where(n => !_running.ContainsKey(n)))
        {
            StartRevision(entry.History.Find(name)!);
            started.Add(name);
        }

        var plan = new TrafficPlan(targets, route, started, RevisionsToWaitFor(entry, targets));
        if (plan.Waits.Count == 0)
        {
            var first = entry.Traffic.Count == 0;
            await CommitTrafficAsync(entry, plan).ConfigureAwait(false);
            plan.Committed = true;
            plan.Outcome = first ? "routed at once (the function's first route)" : "routed at once";
            return plan;
        }

        Log($"{entry.History.Function}: traffic moves to {string.Join(", ", plan.Waits.Select(w => w.Revision.Name))} once it has a ready instance; "
            + $"until then it stays as it is ({Describe(entry.Traffic)})");
        return plan;
    }

    /// <summary>
    /// The revisions <paramref name="targets"/> would move traffic to that have not had a ready instance in their
    /// current run, though they start with instances: a share of the main host that they did not have, or a tag that
    /// pointed at another revision. Knative routes to a revision only once it is ready; until then the old route stays,
    /// so a deploy never sends users through a cold start, and a revision that never gets ready (a crash loop, a refused
    /// KMS login) never takes the function down. None for a function's first route (there is nothing to keep), for a
    /// revision at <c>scale.initial: 0</c> (it has no instance to wait for, as Knative's zero initial scale: requests
    /// wait at the activator), and for a new tag (its host answered nothing before).
    /// </summary>
    private List<(Revision Revision, Running Run)> RevisionsToWaitFor(FunctionEntry entry, IReadOnlyList<TrafficTarget> targets)
    {
        if (entry.Traffic.Count == 0)
        {
            return [];
        }

        var shared = entry.Traffic.Where(t => t.Percent > 0).Select(t => t.Revision).ToHashSet(StringComparer.Ordinal);
        var tagged = entry.Traffic.Where(t => t.Tag is not null).ToDictionary(t => t.Tag!, t => t.Revision, StringComparer.Ordinal);
        return targets
            .Where(t => (t.Percent > 0 && !shared.Contains(t.Revision)) || (t.Tag is not null && tagged.TryGetValue(t.Tag, out var was) && was != t.Revision))
            .Select(t => t.Revision)
            .Distinct(StringComparer.Ordinal)
            .Select(name => (Revision: entry.History.Find(name)!, Run: _running[name]))
            .Where(w => AutoscalerLoop.OptionsFor(w.Revision.Spec.Scale).InitialInstances > 0 && !HasBeenReady(w.Run))
            .ToList();
    }

    /// <summary>
    /// Under the function's gate, without <see cref="_changes"/>: waits for each revision of <paramref name="plan"/> to
    /// have a ready instance, within its progress deadline (<see cref="AutoscalerOptions.ProgressDeadline"/>, from its
    /// start, after which its autoscaler takes it to zero anyway), then routes. A revision that does not get there is
    /// stopped again and the change refused (<see cref="ServingException.NotReady"/>, naming the revision and the route
    /// that stayed); a caller that goes away (<paramref name="ct"/>) abandons the change the same way, so the route never
    /// moves after its caller was told nothing.
    /// </summary>
    private async Task<(string Rollout, FunctionStatus Status)> FinishTrafficAsync(FunctionEntry entry, TrafficPlan plan, CancellationToken ct)
    {
        var function = entry.History.Function;
        var waited = _options.Time.GetTimestamp();
        string? failure = null;
        using var waitOrStop = CancellationTokenSource.CreateLinkedTokenSource(ct, _stoppingSource.Token);
        try
        {
            foreach (var (revision, run) in plan.Waits)
            {
                var deadline = AutoscalerLoop.OptionsFor(revision.Spec.Scale).ProgressDeadline;
                var left = deadline - _options.Time.GetElapsedTime(run.Started);
                bool ready;
                try
                {
                    ready = left > TimeSpan.Zero && await run.Supervisor.FirstReady.WaitAsync(left, _options.Time, waitOrStop.Token).ConfigureAwait(false);
                }
                catch (TimeoutException)
                {
                    ready = false;
                }

                if (!ready)
                {
                    failure = run.Supervisor.FirstReady.IsCompleted
                        ? $"revision {revision.Name} was stopped before it had a ready instance"
                        : $"revision {revision.Name} did not become ready within its progress deadline ({deadline.TotalSeconds:0} s)";
                    break;
                }
            }
        }
        catch (OperationCanceledException) when (ct.IsCancellationRequested)
        {
            await AbandonAsync(entry, plan, "the change that gave it traffic was cancelled before it became ready").ConfigureAwait(false);
            throw;
        }
        catch (OperationCanceledException) when (_stoppingSource.IsCancellationRequested)
        {
            // The lock below then refuses the change (Unavailable); the host's stop stops the revision with the rest.
            failure = "the serving host is stopping";
        }

        await EnterChangeAsync(CancellationToken.None).ConfigureAwait(false);
        try
        {
            if (!_functions.TryGetValue(function, out var current) || !ReferenceEquals(current, entry))
            {
                // rm stopped the revisions, the waited one too: nothing is left to route or to stop.
                throw new ServingException($"{function} was removed while {string.Join(", ", plan.Waits.Select(w => w.Revision.Name))} was starting: no traffic was moved", notFound: true);
            }

            if (failure is not null)
            {
                await StopUnroutedAsync(entry, plan, "it did not become ready, so traffic was not moved to it").ConfigureAwait(false);
                Log($"{function}: {failure}: traffic stays as it was ({Describe(entry.Traffic)})");
                throw new ServingException($"{function}: {failure}, so traffic was not moved to it and stays where it was ({Describe(entry.Traffic)}); "
                    + $"its instances' output: morph logs {function}") { NotReady = true };
            }

            await CommitTrafficAsync(entry, plan).ConfigureAwait(false);
            var rollout = $"routed once {string.Join(", ", plan.Waits.Select(w => w.Revision.Name))} had a ready instance ({_options.Time.GetElapsedTime(waited).TotalSeconds:0.#} s)";
            Log($"{function}: {rollout}");
            return (rollout, Status(entry));
        }
        finally
        {
            _changes.Release();
        }
    }

    /// <summary>Under <see cref="_changes"/>: routes <paramref name="plan"/> and drains the revisions it leaves without a share or a tag.</summary>
    private async Task CommitTrafficAsync(FunctionEntry entry, TrafficPlan plan)
    {
        try
        {
            // Again: while the change waited for a ready instance, another function may have taken one of its tag hosts.
            RefuseClaimedHosts(entry.History.Function, plan.Targets.Select(t => t.Tag));
        }
        catch (ServingException)
        {
            await StopUnroutedAsync(entry, plan, "the traffic change that gave it traffic was refused").ConfigureAwait(false);
            throw;
        }

        entry.Traffic = plan.Targets;
        Routes.Set(plan.Route);
        var wanted = Wanted(plan.Targets);
        foreach (var revision in entry.History.Revisions.Where(r => !wanted.Contains(r.Name)))
        {
            await StopRevisionAsync(revision.Name, "it no longer has traffic or a tag, and was stopped").ConfigureAwait(false);
        }
    }

    /// <summary>Takes <see cref="_changes"/> to stop what a cancelled change started; the host stopping stops it anyway.</summary>
    private async Task AbandonAsync(FunctionEntry entry, TrafficPlan plan, string why)
    {
        try
        {
            await EnterChangeAsync(CancellationToken.None).ConfigureAwait(false);
        }
        catch (ServingException e) when (e.Unavailable)
        {
            return;
        }

        try
        {
            if (_functions.TryGetValue(entry.History.Function, out var current) && ReferenceEquals(current, entry))
            {
                await StopUnroutedAsync(entry, plan, why).ConfigureAwait(false);
            }
        }
        finally
        {
            _changes.Release();
        }
    }

    /// <summary>Under <see cref="_changes"/>: stops the revisions <paramref name="plan"/> started that the function's route does not use.</summary>
    private async Task StopUnroutedAsync(FunctionEntry entry, TrafficPlan plan, string why)
    {
        var wanted = Wanted(entry.Traffic);
        foreach (var name in plan.Started.Where(n => !wanted.Contains(n)))
        {
            await StopRevisionAsync(name, why).ConfigureAwait(false);
        }
    }

    // The revisions a route runs: those with a share or a tag.
    private static HashSet<string> Wanted(IEnumerable<TrafficTarget> targets) =>
        targets.Where(t => t.Percent > 0 || t.Tag is not null).Select(t => t.Revision).ToHashSet(StringComparer.Ordinal);

    // A traffic block for messages: "fn-00001 90 %, fn-00002 10 % (tag canary)".
    private static string Describe(IReadOnlyList<TrafficTarget> targets) =>
        targets.Count == 0 ? "no route" : string.Join(", ", targets.Select(t => $"{t.Revision} {t.Percent} %{(t.Tag is null ? "" : $" (tag {t.Tag})")}"));

    // True once an instance of the run was ready (false as well when the run was stopped first).
    private static bool HasBeenReady(Running run) => run.Supervisor.FirstReady is { IsCompletedSuccessfully: true, Result: true };

    private SemaphoreSlim FunctionGate(string function) => _functionGates.GetOrAdd(function, _ => new SemaphoreSlim(1, 1));

    private RevisionHistory NewHistory(string function) => new(function, _removedGenerations.GetValueOrDefault(function));

    private void StartRevision(Revision revision)
    {
        var supervisor = new RevisionSupervisor(revision, _launcher!, Instances,
            _options.Supervisor with { PublishTlsEndpoints = _options.Mode == GatewayMode.Confidential }, _options.Time, Log, OnReady);
        var loop = new AutoscalerLoop(AutoscalerLoop.OptionsFor(revision.Spec.Scale), Concurrency, Instances, supervisor, _options.Time);
        // A fresh set of instances and held requests: those of an earlier run were failed when it stopped.
        Instances.Open(revision.Name);
        _running[revision.Name] = new Running(supervisor, loop, _options.Time.GetTimestamp());
    }

    private async Task StopRevisionAsync(string revision, string why)
    {
        if (_running.TryRemove(revision, out var run))
        {
            // Before the drain (up to DrainTimeout per revision): its held requests fail now, with why, rather than
            // wait out the activator's timeout for an instance that will not come.
            Instances.Close(revision, why);
            await run.Loop.DisposeAsync().ConfigureAwait(false);
            await run.Supervisor.DisposeAsync().ConfigureAwait(false);
        }
    }

    private void OnReady(Revision revision, IInstanceProcess process)
    {
        if (process.ColdStart is { } phases)
        {
            Metrics.ColdStart(revision.Function, revision.Name, phases);
        }
    }

    private IEnumerable<RevisionGauges> Gauges() =>
        _running.Values.Select(r => new RevisionGauges(r.Supervisor.Revision.Function, r.Supervisor.Revision.Name,
            Concurrency.Current(r.Supervisor.Revision.Name), Instances.Queued(r.Supervisor.Revision.Name), r.Supervisor.Desired, r.Supervisor.Counts()));

    private FunctionEntry Entry(string function) =>
        _functions.TryGetValue(function, out var entry) ? entry : throw new ServingException($"no function {function}", notFound: true);

    private string HostOf(string function) => $"{function}.{_options.Domain}";

    private void Log(string line)
    {
        lock (_logGate)
        {
            _log.WriteLine($"{_options.Time.GetUtcNow():O} serving: {line}");
            _log.Flush();
        }
    }

    private sealed class FunctionEntry(RevisionHistory history)
    {
        public RevisionHistory History { get; } = history;

        public IReadOnlyList<TrafficTarget> Traffic { get; set; } = [];
    }

    // Started: when this run began (monotonic), from which a revision's progress deadline counts.
    private sealed record Running(RevisionSupervisor Supervisor, AutoscalerLoop Loop, long Started);

    // A traffic change between its start and its route: what it routes, which revisions it started, and the ones whose
    // first ready instance it waits for. Committed (with Outcome) once routed without a wait.
    private sealed class TrafficPlan(IReadOnlyList<TrafficTarget> targets, FunctionRoute route, IReadOnlyList<string> started, IReadOnlyList<(Revision Revision, Running Run)> waits)
    {
        public IReadOnlyList<TrafficTarget> Targets { get; } = targets;

        public FunctionRoute Route { get; } = route;

        public IReadOnlyList<string> Started { get; } = started;

        public IReadOnlyList<(Revision Revision, Running Run)> Waits { get; } = waits;

        public bool Committed { get; set; }

        public string Outcome { get; set; } = "";
    }

    private sealed class Trigger(ServingHost host) : IScaleFromZeroTrigger
    {
        public void Poke(string revision, int queued) => host.Loop(revision)?.Poke(revision, queued);
    }

    private sealed class Observer(ServingMetrics metrics) : IGatewayObserver
    {
        public void Forwarded(BackendTarget target) => metrics.Request(FunctionOf(target.Revision), target.Revision, "forwarded");

        public void Refused(string host, string? revision)
        {
            if (revision is not null)
            {
                metrics.Request(FunctionOf(revision), revision, "refused");
            }
        }

        public void FirstByte(BackendTarget target, TimeSpan elapsed) => metrics.FirstByte(FunctionOf(target.Revision), target.Revision, elapsed);

        // Revision names are FUNCTION-NNNNN.
        private static string FunctionOf(string revision) => revision[..revision.LastIndexOf('-')];
    }
}
