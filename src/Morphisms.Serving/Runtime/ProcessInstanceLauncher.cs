using System.Diagnostics;
using System.Globalization;
using System.Net;
using Morphisms.Attestation.Simulated;
using Morphisms.Serving.Hosting;
using Morphisms.Serving.Revisions;
using Morphisms.Serving.Spec;

namespace Morphisms.Serving.Runtime;

/// <summary>
/// Starts instances as local processes: confidential ones through <c>morph-init</c> (which attests, fetches
/// secrets, terminates TLS and starts the app), <c>tee: none</c> ones as the app itself. Under bubblewrap where
/// it works (see <see cref="Bubblewrap"/>), plain processes otherwise — said once in the log at start. A sandboxed
/// instance of a real TEE (<c>snp</c>, <c>tdx</c>, <c>sgx</c>) also sees that TEE's guest interfaces present on the
/// host (<see cref="TeeInterfaces"/>); a host without them is said once in the log, and in each such instance's log.
/// </summary>
public sealed class ProcessInstanceLauncher : IInstanceLauncher
{
    /// <summary>The variable naming the morph-init to run when <see cref="RuntimeOptions.MorphInit"/> is not set.</summary>
    public const string MorphInitVariable = "MORPH_INIT";

    /// <summary>
    /// The variable that names, to a confidential instance's agent, the file holding its report token (the bearer token
    /// of its own cold-start report, and of nothing else): <see cref="ReportTokenFileName"/> in the instance's own
    /// directory, 0600, which the agent deletes once read, before it starts the app. Not the token itself: under
    /// bubblewrap the sandbox's PID 1 (bubblewrap's init, dumpable, under the app's uid) keeps the environment it was
    /// started with in <c>/proc/1/environ</c> for the instance's life, and a command line is readable by anyone.
    /// </summary>
    public const string ReportTokenFileVariable = "MORPH_REPORT_TOKEN_FILE";

    /// <summary>The name of the report token's file in the instance's directory (<see cref="ReportTokenFileVariable"/>).</summary>
    public const string ReportTokenFileName = "report-token";

    /// <summary>
    /// The name of the UNIX domain socket, in the instance's directory, on which a <c>tee: sgx</c> app serves plain HTTP
    /// (morph-init's <c>--app-socket</c>, given to the app as <c>MORPH_APP_SOCKET</c>): under Gramine the agent refuses
    /// loopback TCP, which is the host kernel's.
    /// </summary>
    public const string AppSocketFileName = "app.sock";

    /// <summary>
    /// The variable an agent started by hand may take its report token from. The launcher never sets it, and removes
    /// it from every instance's environment: set by a spec, it would sit in the sandbox's <c>/proc/1/environ</c>.
    /// </summary>
    public const string ReportTokenVariable = "MORPH_REPORT_TOKEN";

    private readonly RuntimeOptions _options;
    private readonly TimeProvider _time;
    private readonly Action<string> _log;
    private readonly Bubblewrap? _bwrap;
    private readonly CgroupLimits _cgroups = new();
    private readonly IReadOnlyList<string> _morphInit;
    private readonly System.Collections.Concurrent.ConcurrentDictionary<FunctionTee, bool> _teeWarned = new();
    private readonly InstanceDirectories _directories;

    /// <summary>Probes bubblewrap and logs how instances will be isolated.</summary>
    /// <exception cref="InvalidOperationException">The sandbox is required but unavailable, or morph-init cannot be found.</exception>
    public ProcessInstanceLauncher(RuntimeOptions options, TimeProvider time, Action<string> log)
    {
        _options = options;
        _time = time;
        _log = log;
        _directories = new InstanceDirectories(options.DataDirectory, log);
        _morphInit = options.MorphInit ?? DefaultMorphInit();
        log($"runtime: confidential instances start with {string.Join(' ', _morphInit)}");
        if (options.Sandbox == SandboxMode.Off)
        {
            log("runtime: sandbox off: instances run as plain processes (no bubblewrap)");
        }
        else
        {
            _bwrap = Bubblewrap.Probe(out var reason);
            if (_bwrap is null && options.Sandbox == SandboxMode.Required)
            {
                throw new InvalidOperationException($"runtime: a sandbox is required but {reason}");
            }

            log(_bwrap is null
                ? $"runtime: {reason}: instances run as PLAIN PROCESSES, not sandboxed"
                : $"runtime: {_bwrap.Version}: instances see only the system, the programs they run and their own paths (no home, no data directory), with a private /tmp, PID/IPC/UTS namespaces, no capabilities (even as root) and die-with-parent; the network namespace is shared (the instance port must stay reachable)");
        }

        log(options.MemoryLimitBytes > 0 || options.PidsLimit > 0
            ? CgroupLimits.Shell is null
                ? "runtime: cgroup v1 limits are applied per instance where writable (each outcome is logged), but there is no sh to join them before an instance's program starts: what it forks at once is outside them"
                : "runtime: cgroup v1 limits are applied per instance where writable (each outcome is logged), joined before the instance's program starts"
            : "runtime: no cgroup limits configured");
    }

    /// <summary>True when instances run under bubblewrap.</summary>
    public bool Sandboxed => _bwrap is not null;

    /// <inheritdoc />
    public IInstanceProcess Launch(Revision revision, string instanceId)
    {
        // Removed when the process exits, or at once when the launch is refused (it is retried under a new id, so a
        // directory left by each refusal would pile up).
        var directory = _directories.Acquire(instanceId);

        // The groups exist, limited, before the process does: it joins them itself before its program runs.
        var cgroups = _options.MemoryLimitBytes > 0 || _options.PidsLimit > 0
            ? _cgroups.Prepare(instanceId, _options.MemoryLimitBytes, _options.PidsLimit)
            : CgroupPlan.None;
        ProcessInstance instance;
        bool joined;
        try
        {
            (instance, joined) = Start(revision, instanceId, directory, cgroups);
        }
        catch
        {
            _cgroups.Remove(instanceId, _time, _log);
            directory.Release();
            throw;
        }

        var logs = instance.Logs;
        logs.Add(_time.GetUtcNow(), "runtime", $"started {(instance.TlsEndpoint is not null ? "morph-init" : "app")} pid {instance.Pid}{(_bwrap is null ? " (not sandboxed)" : " under bubblewrap")}");
        foreach (var note in cgroups.Notes)
        {
            logs.Add(_time.GetUtcNow(), "runtime", note);
        }

        if (cgroups.Join.Count > 0)
        {
            foreach (var note in joined
                ? ["cgroup: joined before its program started, so everything it forks is inside the limits"]
                : CgroupLimits.JoinRunning(cgroups, instance.Pid))
            {
                logs.Add(_time.GetUtcNow(), "runtime", note);
            }
        }

        return instance;
    }

    // Everything up to the process's start: whatever throws here leaves no process behind. Joined: the process joins
    // the cgroups itself, before its program runs.
    private (ProcessInstance Instance, bool Joined) Start(Revision revision, string instanceId, InstanceDirectories.Lease directory, CgroupPlan cgroups)
    {
        var dir = directory.Path;
        var spec = revision.Spec;
        var tee = TeeSandboxPlan.For(spec.Tee, _options.TeeInterfaces);
        if (tee.Missing is { } missing && _teeWarned.TryAdd(spec.Tee, true))
        {
            _log($"runtime: tee: {spec.Tee.ToString().ToLowerInvariant()} functions cannot obtain evidence on this host (first: {spec.Name}): {missing} (logged once per TEE)");
        }

        var appPort = Ports.Free();
        var confidential = spec.Tee != FunctionTee.None;
        var tlsPort = confidential ? Ports.Free() : 0;
        var app = ResolveCommand(spec);
        List<string> command;
        if (confidential)
        {
            var launchConfig = Path.Combine(dir, "launch.json");
            File.WriteAllBytes(launchConfig, revision.LaunchConfig);
            command = [.. _morphInit, .. AgentArguments(revision, instanceId, dir, launchConfig, tlsPort, appPort), "--", .. app];
        }
        else
        {
            command = [.. app];
        }

        var info = new ProcessStartInfo { WorkingDirectory = spec.Bundle };

        // ProcessStartInfo starts from the whole environment of the serving process, which may hold the operator's tokens.
        info.Environment.Clear();
        foreach (var (name, value) in InstanceEnvironment.Inherited(Environment.GetEnvironmentVariables()))
        {
            info.Environment[name] = value;
        }

        // The spec's env is measured and non-secret; secrets reach the app only through the agent.
        foreach (var (name, value) in spec.Env)
        {
            info.Environment[name] = value;
        }

        if (confidential)
        {
            foreach (var (name, value) in _options.AgentEnvironment)
            {
                info.Environment[name] = value;
            }
        }
        else
        {
            info.Environment["PORT"] = appPort.ToString(CultureInfo.InvariantCulture);
        }

        // Set last, so no spec or agent variable can replace it; only agents report, so a plain app gets none.
        var reportToken = confidential && _options.ReportUrl is not null ? BearerToken.New() : null;
        var reportTokenFile = reportToken is null ? null : WriteReportToken(dir, reportToken);
        info.Environment.Remove(ReportTokenVariable);
        if (reportTokenFile is not null)
        {
            info.Environment[ReportTokenFileVariable] = reportTokenFile;
        }
        else
        {
            info.Environment.Remove(ReportTokenFileVariable);
        }

        if (_bwrap is not null)
        {
            command = [.. _bwrap.Wrap(command, Readable(spec, app, confidential, info.Environment, instanceId), [dir], tee.Mounts)];
        }

        // Outermost, around bwrap too: bwrap clones the sandbox at once, and only a process already in the groups when
        // it forks has its children start in them.
        var joining = CgroupLimits.JoiningCommand(cgroups, command);
        command = [.. joining ?? command];

        info.FileName = command[0];
        foreach (var arg in command.Skip(1))
        {
            info.ArgumentList.Add(arg);
        }

        var logs = new LogRing(_options.LogLines);
        if (tee.Missing is not null)
        {
            // The host log says it once; each instance's own log says it too, beside the agent's evidence error.
            logs.Add(_time.GetUtcNow(), "runtime", $"no usable tee: {spec.Tee.ToString().ToLowerInvariant()} interface on this host: {tee.Missing}");
        }

        var instance = new ProcessInstance(
            instanceId, info, confidential ? new IPEndPoint(IPAddress.Loopback, tlsPort) : null, new IPEndPoint(IPAddress.Loopback, appPort),
            logs, _time, _bwrap is not null, id =>
            {
                _cgroups.Remove(id, _time, _log);
                directory.Release();
            })
        {
            ReportToken = reportToken,
            ReportTokenFile = reportTokenFile,
        };
        return (instance, joining is not null && cgroups.Join.Count > 0);
    }

    // In the instance's directory, the one place of the host its sandbox shows that no other instance sees; created
    // new (never a file or symlink already there) and 0600 from the start, so it is never open to anyone else. Nothing
    // runs in the sandbox yet, and the agent deletes the file before it starts anything; the directory goes with the
    // instance in any case.
    private static string WriteReportToken(string dir, BearerToken token)
    {
        var path = Path.Combine(dir, ReportTokenFileName);
        var options = new FileStreamOptions { Mode = FileMode.CreateNew, Access = FileAccess.Write, Share = FileShare.None };
        if (!OperatingSystem.IsWindows())
        {
            options.UnixCreateMode = UnixFileMode.UserRead | UnixFileMode.UserWrite;
        }

        using (var file = new FileStream(path, options))
        {
            file.Write(System.Text.Encoding.ASCII.GetBytes(token.Value));
        }

        return path;
    }

    // What an instance reads besides the system view and its own directory (bound writable: its launch configuration and
    // secrets): its bundle, the programs it runs and the .NET runtime they need, found through the environment the
    // instance gets. Those come from the spec, the bundle and the environment, so each is bound at its real path and
    // vetted (SandboxPaths): none may show the whole host, its /dev or /proc, or the host's own state — the data
    // directory, the simulated TEE, the control token's directory. Of the simulated TEE's state only what morph-init
    // loads, chosen here: the keys it signs evidence with and the digests recorded for this bundle — not the other
    // bundles' records. The agent's other arguments are not shown: --sim-dir names that whole directory, and the secrets
    // and launch configuration are in the instance's own.
    private List<string> Readable(FunctionSpec spec, IReadOnlyList<string> app, bool confidential, IDictionary<string, string?> environment, string instanceId)
    {
        var searchPath = environment.TryGetValue("PATH", out var path) ? path : null;
        List<string> derived = [spec.Bundle, .. ProgramLocations.ForCommand(app, searchPath), .. ProgramLocations.DotnetRoots(environment)];
        if (confidential)
        {
            derived.AddRange(ProgramLocations.ForCommand(_morphInit, searchPath));
        }

        List<string> readable;
        try
        {
            readable = [.. SandboxPaths.Resolve(derived, ProtectedPaths())];
        }
        catch (InvalidOperationException e)
        {
            throw new InvalidOperationException($"runtime: {spec.Name} ({instanceId}): {e.Message}", e);
        }

        if (confidential && spec.Tee == FunctionTee.Sim && _options.SimulatedTeeDirectory is { } sim)
        {
            readable.Add(Path.Combine(sim, SimulatedTeeAuthority.StateFileName));
            readable.Add(SimulatedMeasurementCache.RecordPath(sim, spec.Bundle));
        }

        return readable;
    }

    private List<string> ProtectedPaths() =>
        [_options.DataDirectory, .. _options.SimulatedTeeDirectory is { } sim ? [sim] : Array.Empty<string>(), .. _options.ProtectedPaths];

    private List<string> AgentArguments(Revision revision, string instanceId, string dir, string launchConfig, int tlsPort, int appPort)
    {
        var spec = revision.Spec;
        var kms = _options.KmsUrl ?? throw new InvalidOperationException("runtime: a confidential function needs the KMS URL");
        List<string> args =
        [
            "--kms", kms.ToString(), "--function", spec.Name, "--tee", AgentTee(spec.Tee),
            "--port", tlsPort.ToString(CultureInfo.InvariantCulture), "--listen-address", "127.0.0.1",
            .. spec.Tee == FunctionTee.Sgx
                ? new[] { "--app-socket", AppSocket(spec, instanceId, dir) }
                : new[] { "--app-port", appPort.ToString(CultureInfo.InvariantCulture) },
            "--secrets-dir", Path.Combine(dir, "secrets"), "--launch-config", launchConfig,
        ];
        if (spec.Secrets is { } secrets)
        {
            args.AddRange(["--secret-path", secrets]);
        }

        if (_options.ReportUrl is { } report)
        {
            args.AddRange(["--report-url", new Uri(report, $"v1/instances/{instanceId}/cold-start").ToString()]);
        }

        if (spec.Tee == FunctionTee.Sim)
        {
            var sim = _options.SimulatedTeeDirectory ?? throw new InvalidOperationException("runtime: tee sim needs the simulated TEE directory");
            args.AddRange(["--sim-dir", sim, "--bundle", spec.Bundle, "--sim-format", "snp"]);
        }

        return args;
    }

    // Under Gramine the agent refuses to serve its app on TCP (exit 2): Gramine has no network stack, so loopback TCP is
    // the untrusted host kernel's and would carry every decrypted request; a UNIX domain socket between the enclave's
    // processes is a pipe Gramine encrypts. It goes in the instance's own directory, the one writable place its sandbox
    // shows to both morph-init and the app, and no other instance sees. sockaddr_un holds 107 bytes and a NUL: a longer
    // path could not be bound, so the launch is refused naming it rather than leaving the agent to fail at each start.
    private static string AppSocket(FunctionSpec spec, string instanceId, string dir)
    {
        const int maxUnixSocketPath = 107;
        var path = Path.Combine(dir, AppSocketFileName);
        return System.Text.Encoding.UTF8.GetByteCount(path) <= maxUnixSocketPath
            ? path
            : throw new InvalidOperationException($"runtime: {spec.Name} ({instanceId}): the app's socket {path} is longer than a UNIX socket path may be ({maxUnixSocketPath} bytes); use a shorter data directory");
    }

    private static string AgentTee(FunctionTee tee) => tee switch
    {
        FunctionTee.Sim => "sim",
        FunctionTee.Snp => "snp",
        FunctionTee.Sgx => "gramine",
        FunctionTee.Tdx => "tdx",
        _ => throw new ArgumentOutOfRangeException(nameof(tee), tee, "no agent for this TEE"),
    };

    // A command naming a file in the bundle runs that file; otherwise it is looked up on PATH, as a shell would.
    private static List<string> ResolveCommand(FunctionSpec spec)
    {
        var first = spec.Command[0];
        var inBundle = Path.Combine(spec.Bundle, first);
        return [File.Exists(inBundle) ? Path.GetFullPath(inBundle) : first, .. spec.Command.Skip(1)];
    }

    private static List<string> DefaultMorphInit()
    {
        // A published build (ReadyToRun or NativeAOT) starts in a fraction of the JIT's time, and morph-init's start
        // is on every cold start's path; the build output beside this assembly is the fallback that always exists.
        if (Environment.GetEnvironmentVariable(MorphInitVariable) is { Length: > 0 } configured)
        {
            return FromPath(configured);
        }

        var dll = Path.Combine(AppContext.BaseDirectory, "morph-init.dll");
        if (!File.Exists(dll))
        {
            throw new InvalidOperationException($"runtime: morph-init not found at {dll}; set RuntimeOptions.MorphInit or {MorphInitVariable}");
        }

        return [DotnetHost(), dll];
    }

    // A .dll runs under the dotnet host; anything else must be an executable (a NativeAOT or apphost build).
    private static List<string> FromPath(string path)
    {
        var full = Path.GetFullPath(path);
        if (!File.Exists(full))
        {
            throw new InvalidOperationException($"runtime: {MorphInitVariable}={path}: no such file");
        }

        return full.EndsWith(".dll", StringComparison.OrdinalIgnoreCase) ? [DotnetHost(), full] : [full];
    }

    // Under `dotnet test` or `dotnet morph.dll` the host is known; an apphost (`morph`) is not dotnet itself.
    private static string DotnetHost() =>
        Environment.GetEnvironmentVariable("DOTNET_HOST_PATH") is { Length: > 0 } host ? host
        : Environment.ProcessPath is { } self && Path.GetFileNameWithoutExtension(self) == "dotnet" ? self
        : "dotnet";
}
