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

        await EnterChangeAsync(ct).ConfigureAwait(false);
        try
        {
            RefuseASecondConfidentialVmFunction(spec);
            RefuseClaimedHosts(spec.Name, spec.Traffic.Select(t => t.Tag));
            RefuseBadTraffic(spec, _functions.TryGetValue(spec.Name, out var known) ? known.History : null);
            var entry = known ?? new FunctionEntry(NewHistory(spec.Name));
            // The simulated TEE's record of the bundle's file digests: a deploy measures the bundle anyway, and what it
            // records spares the revision's instances from digesting it again at launch (they only read it).
            var measured = spec.Tee == FunctionTee.Sim && _options.SimulatedTeeDirectory is { } simulated
                ? SimulatedMeasurementCache.Open(simulated, spec.Bundle)
                : null;
            Revision revision;
            bool created;
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

            var note = "no KMS registration (tee: none)";
            if (_registrar is not null && spec.Tee != FunctionTee.None)
            {
                try
                {
                    note = await _registrar.RegisterAsync(entry.History.Revisions, ct).ConfigureAwait(false);
                }
                catch (Exception e) when (e is InvalidOperationException or HttpRequestException || (e is TaskCanceledException && !ct.IsCancellationRequested))
                {
                    // A KMS that times out is a failed registration, not a crash of the control API.
                    throw new ServingException($"KMS registration failed: {e.Message}") { Upstream = true };
                }
            }

            await ApplyTrafficAsync(entry, spec.Traffic).ConfigureAwait(false);
            Log($"deploy {spec.Name}: {revision.Name}{(created ? " (new)" : " (unchanged)")}; {note}");
            // The simulated TEE's evidence is SNP-format: its instances' certificates carry "snp" and this digest.
            var expect = spec.Tee == FunctionTee.Sim ? "snp:" + revision.Measurement : null;
            return new DeployResult(spec.Name, revision.Name, created, HostOf(spec.Name), revision.Measurement, note, expect);
        }
        finally
        {
            _changes.Release();
        }
    }

    /// <summary>Replaces a function's traffic block; returns the function's status as the change left it.</summary>
    /// <exception cref="ServingException">Unknown function or revision, or an invalid split.</exception>
    public async Task<FunctionStatus> SetTrafficAsync(string function, IReadOnlyList<TrafficSpec> traffic, CancellationToken ct)
    {
        await EnterChangeAsync(ct).ConfigureAwait(false);
        FunctionStatus status;
        try
        {
            var entry = Entry(function);
            await ApplyTrafficAsync(entry, traffic).ConfigureAwait(false);
            // Under the lock: once it is released, an rm may remove the function before the caller could look it up.
            status = Status(entry);
        }
        finally
        {
            _changes.Release();
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
    /// leaves nothing behind; <see cref="ApplyTrafficAsync"/> checks again against the revisions as they then are.
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

    private async Task ApplyTrafficAsync(FunctionEntry entry, IReadOnlyList<TrafficSpec> traffic)
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
        var wanted = targets.Where(t => t.Percent > 0 || t.Tag is not null).Select(t => t.Revision).ToHashSet(StringComparer.Ordinal);
        foreach (var name in wanted.Where(n => !_running.ContainsKey(n)))
        {
            StartRevision(entry.History.Find(name)!);
        }

        entry.Traffic = targets;
        Routes.Set(route);
        foreach (var revision in entry.History.Revisions.Where(r => !wanted.Contains(r.Name)))
        {
            await StopRevisionAsync(revision.Name, "it no longer has traffic or a tag, and was stopped").ConfigureAwait(false);
        }
    }

    private RevisionHistory NewHistory(string function) => new(function, _removedGenerations.GetValueOrDefault(function));

    private void StartRevision(Revision revision)
    {
        var supervisor = new RevisionSupervisor(revision, _launcher!, Instances,
            _options.Supervisor with { PublishTlsEndpoints = _options.Mode == GatewayMode.Confidential }, _options.Time, Log, OnReady);
        var loop = new AutoscalerLoop(AutoscalerLoop.OptionsFor(revision.Spec.Scale), Concurrency, Instances, supervisor, _options.Time);
        // A fresh set of instances and held requests: those of an earlier run were failed when it stopped.
        Instances.Open(revision.Name);
        _running[revision.Name] = new Running(supervisor, loop);
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

    private sealed record Running(RevisionSupervisor Supervisor, AutoscalerLoop Loop);

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
