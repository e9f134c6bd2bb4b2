using System.Diagnostics;
using System.Net;
using System.Text.Json;
using System.Text.Json.Nodes;
using Morphisms.Attestation;
using Morphisms.Serving.Hosting;

namespace Morphisms.Serving.Runtime;

/// <summary>
/// A local process running one instance: <c>morph-init</c> (confidential) or the app itself (<c>tee: none</c>).
/// Its output goes to a bounded ring, read through <see cref="BoundedLineSplitter"/> so that no line, however long,
/// is ever held whole. A confidential instance is ready when the agent reported its cold start
/// (the <c>cold_start</c> log event, or the report POSTed to the control API) and its TLS port accepts; a plain one
/// when its app port accepts. The runtime is untrusted: readiness is about availability, never about trust —
/// clients still verify the instance's attested certificate themselves.
/// </summary>
public sealed class ProcessInstance : IInstanceProcess
{
    /// <summary>How often a starting instance's port is probed.</summary>
    internal static readonly TimeSpan ReadyPollInterval = TimeSpan.FromMilliseconds(2);

    /// <summary>The longest output line kept (characters); longer ones are cut and marked with '…'. The agent's cold_start line is ~700.</summary>
    internal const int MaxLineLength = 4096;

    /// <summary>
    /// How long, once the process has exited, its output is still read before it counts as exited: the pipes stay open as
    /// long as anything that inherited them lives (a child the app left behind, an app that outlived a killed morph-init).
    /// </summary>
    internal static readonly TimeSpan OutputGrace = TimeSpan.FromSeconds(2);

    private readonly Process _process;
    private readonly TimeProvider _time;
    private readonly long _spawnedAt;
    private readonly bool _confidential;
    private readonly bool _sandboxed;
    private readonly TaskCompletionSource<JsonObject> _report = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private readonly TaskCompletionSource _posted = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private readonly TaskCompletionSource<int> _exited = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private readonly CancellationTokenSource _gone = new();
    private readonly TaskCompletionSource<Task> _drained = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private readonly Action<string>? _onExit;
    private readonly bool _ownGroup;

    internal ProcessInstance(string id, ProcessStartInfo info, IPEndPoint? tls, IPEndPoint app, LogRing logs, TimeProvider time, bool sandboxed, Action<string>? onExit)
    {
        Id = id;
        TlsEndpoint = tls;
        AppEndpoint = app;
        Logs = logs;
        _time = time;
        _confidential = tls is not null;
        _sandboxed = sandboxed;
        _onExit = onExit;
        info.RedirectStandardOutput = true;
        info.RedirectStandardError = true;
        info.UseShellExecute = false;
        _ownGroup = !sandboxed && LeadOwnGroup(info);
        _spawnedAt = time.GetTimestamp();
        _process = new Process { StartInfo = info, EnableRaisingEvents = true };
        _process.Exited += (_, _) => _ = OnExitedAsync();
        // Not from this (possibly thread-pool) thread: a sandboxed instance dies with the thread that forked it.
        SpawnThread.Start(_process);
        Pid = _process.Id;
        // Not BeginOutputReadLine: it holds a whole line before handing it on, however long the line grows.
        _drained.SetResult(Task.WhenAll(
            PumpAsync(_process.StandardOutput, "stdout"),
            PumpAsync(_process.StandardError, "stderr")));
        Ready = WaitReadyAsync(_gone.Token);
    }

    /// <inheritdoc />
    public string Id { get; }

    /// <summary>The process id of what was spawned (bwrap, morph-init or the app).</summary>
    public int Pid { get; }

    /// <inheritdoc />
    public IPEndPoint? TlsEndpoint { get; }

    /// <inheritdoc />
    public IPEndPoint AppEndpoint { get; }

    /// <inheritdoc />
    public Task Ready { get; }

    /// <inheritdoc />
    public Task<int> Exited => _exited.Task;

    /// <inheritdoc />
    public ColdStartPhases? ColdStart { get; private set; }

    /// <inheritdoc />
    public LogRing Logs { get; }

    /// <summary>
    /// The bearer token of this instance's own cold-start report (its agent reads it from a file of its directory), or null when
    /// it reports only through its log. It authenticates that report and nothing else: the function's code beside the
    /// agent may read it, and can then at most report this instance's cold start itself.
    /// </summary>
    internal BearerToken? ReportToken { get; init; }

    /// <summary>
    /// The file <see cref="ReportToken"/> was handed over in (the agent deletes it once read), or null. Checked when the
    /// agent says it is ready: an agent that left it there (one built before the hand-over, through <c>MORPH_INIT</c>)
    /// would leave the token in a directory its app can read.
    /// </summary>
    internal string? ReportTokenFile { get; init; }

    /// <summary>True when <paramref name="authorization"/> (an <c>Authorization</c> header) carries this instance's report token.</summary>
    internal bool IsReportAuthorized(string? authorization) => ReportToken?.MatchesAuthorization(authorization) == true;

    /// <summary>Accepts the agent's cold-start report POSTed to the control API (the same JSON the agent logs), once <see cref="IsReportAuthorized"/>.</summary>
    public void AcceptReport(JsonObject report)
    {
        _report.TrySetResult(report);
        _posted.TrySetResult();
    }

    /// <summary>
    /// Completes once a report POSTed with <see cref="ReportToken"/> was accepted: readiness also takes the agent's
    /// <c>cold_start</c> log event, which usually comes first, so only this says the token reached the agent intact.
    /// </summary>
    internal Task ReportPosted => _posted.Task;

    /// <inheritdoc />
    public async Task StopAsync(TimeSpan drain)
    {
        if (Exited.IsCompleted)
        {
            return;
        }

        // Under bubblewrap the spawned pid is bwrap, which neither forwards signals nor survives one
        // gracefully: signal the first process inside that is not bwrap (the agent, or a plain app),
        // which drains and exits, and bwrap then exits with its status.
        var target = _sandboxed ? ProcessTree.Descendants(Pid).FirstOrDefault(pid => Posix.CommandName(pid) is not (null or "bwrap")) : 0;
        Posix.Signal(target != 0 ? target : Pid, Posix.SigTerm);

        var finished = await Task.WhenAny(Exited, Task.Delay(drain, _time)).ConfigureAwait(false);
        if (finished != Exited)
        {
            Logs.Add(_time.GetUtcNow(), "runtime", $"not stopped within {drain.TotalSeconds:0.#}s of SIGTERM: killing");
            try
            {
                _process.Kill(entireProcessTree: true);
            }
            catch (InvalidOperationException)
            {
            }
        }

        await Exited.ConfigureAwait(false);
    }

    /// <inheritdoc />
    public async ValueTask DisposeAsync()
    {
        await StopAsync(TimeSpan.FromSeconds(2)).ConfigureAwait(false);
        _gone.Dispose();
        _process.Dispose();
    }

    private async Task PumpAsync(StreamReader reader, string stream)
    {
        var splitter = new BoundedLineSplitter(MaxLineLength, (line, cut) => OnLine(stream, line, cut));
        var buffer = new char[4096];
        try
        {
            int read;
            while ((read = await reader.ReadAsync(buffer.AsMemory()).ConfigureAwait(false)) > 0)
            {
                splitter.Feed(buffer.AsSpan(0, read));
            }
        }
        catch (Exception e) when (e is IOException or ObjectDisposedException)
        {
            // The pipe broke or the process was disposed: what was read is kept.
        }

        splitter.Complete();
    }

    private void OnLine(string stream, string line, bool cut)
    {
        Logs.Add(_time.GetUtcNow(), stream, cut ? line + "…" : line);
        if (!cut && _confidential && stream == "stderr" && line.Contains("\"event\":\"cold_start\"", StringComparison.Ordinal))
        {
            try
            {
                if (JsonNode.Parse(line) is JsonObject report)
                {
                    _report.TrySetResult(report);
                }
            }
            catch (JsonException)
            {
            }
        }
    }

    private async Task OnExitedAsync()
    {
        // Nothing of an exited instance lives on: what it left behind (`sh -c 'worker & exec server'`'s worker, an app
        // whose morph-init was OOM-killed) would run unsupervised, still holding the output, after `rm` too. Linux does
        // not reuse a pid while a process group still bears it, so this reaches the instance's own; an empty group's pid
        // may be reused, but only a process that made itself a group leader in the moment since would be hit.
        if (_ownGroup && Posix.SignalGroup(Pid, Posix.SigKill))
        {
            Logs.Add(_time.GetUtcNow(), "runtime", "killed what it left running (its process group)");
        }

        // Exited fires before the redirected streams are drained; wait for them so the last lines are kept. Only for a
        // while: a process that inherited them may keep them open for ever, and until this instance counts as exited it
        // stays routed and holds up whoever stops it. The reading goes on; later lines still reach the log.
        try
        {
            await (await _drained.Task.ConfigureAwait(false)).WaitAsync(OutputGrace, _time).ConfigureAwait(false);
        }
        catch (TimeoutException)
        {
            Logs.Add(_time.GetUtcNow(), "runtime", $"its output is still open {OutputGrace.TotalSeconds:0.#}s after it exited (held by a process it left behind): not waiting for it");
        }
        catch (Exception e)
        {
            Logs.Add(_time.GetUtcNow(), "runtime", $"reading the output failed: {e.Message}");
        }

        var code = _process.ExitCode;
        Logs.Add(_time.GetUtcNow(), "runtime", $"exited with code {code}");
        _gone.Cancel();
        try
        {
            // Before Exited completes: a host that stops once its instances have exited must find them cleaned up.
            _onExit?.Invoke(Id);
        }
        finally
        {
            _exited.TrySetResult(code);
        }
    }

    // A plain instance starts through setsid(1), which makes it the leader of a process group (and session) of its own
    // and execs it in place: the same pid, forked from the spawn thread as before. .NET cannot do this itself on Unix
    // (CreateNewProcessGroup is Windows-only), and its children and theirs stay in that group unless they leave it on
    // purpose. A sandboxed instance needs none of this: bubblewrap's PID namespace goes with it. The program is looked up
    // here as Process.Start would, and one it would not find is left to it, so a program that cannot start still fails
    // the launch rather than setsid. Without setsid on the host the instance shares the host's group as before.
    private static bool LeadOwnGroup(ProcessStartInfo info)
    {
        if (Posix.Setsid is not { } setsid || info.Arguments.Length > 0 || Posix.FindProgram(info.FileName) is not { } program)
        {
            return false;
        }

        info.ArgumentList.Insert(0, program);
        info.ArgumentList.Insert(0, "--");
        info.FileName = setsid;
        return true;
    }

    private async Task WaitReadyAsync(CancellationToken gone)
    {
        try
        {
            JsonObject? report = null;
            if (_confidential)
            {
                report = await _report.Task.WaitAsync(gone).ConfigureAwait(false);
                RemoveReportTokenFileLeftBehind();
            }

            var probe = TlsEndpoint ?? AppEndpoint;
            while (!await Ports.AcceptsAsync(probe, gone).ConfigureAwait(false))
            {
                // Every millisecond here is on the cold-start path of the held requests; a refused loopback connect costs microseconds.
                await Task.Delay(ReadyPollInterval, _time, gone).ConfigureAwait(false);
            }

            ColdStart = Phases(report, _time.GetElapsedTime(_spawnedAt).TotalMilliseconds);
        }
        catch (OperationCanceledException) when (gone.IsCancellationRequested)
        {
            throw new InvalidOperationException($"instance {Id} exited before it was ready (code {(Exited.IsCompleted ? Exited.Result.ToString(System.Globalization.CultureInfo.InvariantCulture) : "?")})");
        }
    }

    private void RemoveReportTokenFileLeftBehind()
    {
        if (ReportTokenFile is not { } file || !File.Exists(file))
        {
            return;
        }

        try
        {
            File.Delete(file);
            Logs.Add(_time.GetUtcNow(), "runtime", "the agent left its report token file in the instance's directory (a morph-init older than this host?): deleted now; the app may have read it until then");
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            Logs.Add(_time.GetUtcNow(), "runtime", $"the agent left its report token file in the instance's directory and it could not be deleted: {e.Message}");
        }
    }

    private static ColdStartPhases Phases(JsonObject? report, double wallMs)
    {
        if (report?["phases_ms"] is not JsonObject phases)
        {
            return new ColdStartPhases(wallMs, 0, 0, 0);
        }

        double Get(string name) => phases[name] is JsonValue v && v.TryGetValue<double>(out var ms) ? ms : 0;
        var agentTotal = report["total_ms"] is JsonValue t && t.TryGetValue<double>(out var total) ? total : 0;
        return new ColdStartPhases(
            Math.Max(0, wallMs - agentTotal),
            Get("keygen") + Get("challenge") + Get("evidence") + Get("login") + Get("certificate"),
            Get("secrets"),
            Get("app_ready"));
    }
}
