using System.Diagnostics;
using System.Net;
using System.Net.Sockets;
using Morphisms.Agent.Secrets;

namespace Morphisms.Agent.App;

/// <summary>The function's app: started with the bundle's env and argv, signalled on secret changes, drained on stop.</summary>
public sealed class AppProcess : IDisposable
{
    private readonly Process _process;

    private AppProcess(Process process) => _process = process;

    /// <summary>The app's process id.</summary>
    public int Id => _process.Id;

    /// <summary>Completes with the exit code when the app exits.</summary>
    public Task<int> Exited { get; private set; } = Task.FromResult(0);

    /// <summary>Replaces the kill of the app's process tree (given its pid) at the end of a stop, so a test can make it fail.</summary>
    internal Action<int>? KillTreeForTests { get; set; }

    // An early-started app's standard input until ReleaseSecrets (null otherwise).
    private StreamWriter? _stdin;

    /// <summary>Starts <paramref name="command"/> plus the bundle's argv, with the bundle's env and the agent's variables.</summary>
    public static AppProcess Start(IReadOnlyList<string> command, SecretBundle bundle, string secretsDir, int appPort, string? appSocket = null) =>
        Start(command, bundle, secretsDir, appPort, appSocket, early: false);

    /// <summary>
    /// Starts the app before attestation (<see cref="AppStart.Early"/>): no bundle env or argv (there is no bundle yet),
    /// <c>MORPH_SECRETS_READY=stdin</c>, and standard input a pipe on which <see cref="ReleaseSecrets"/> writes <c>ready</c>.
    /// </summary>
    public static AppProcess StartEarly(IReadOnlyList<string> command, string secretsDir, int appPort, string? appSocket = null) =>
        Start(command, new SecretBundle(0, new Dictionary<string, string>(), new Dictionary<string, byte[]>(), []), secretsDir, appPort, appSocket, early: true);

    /// <summary>Tells an early-started app that its secrets are in place (one line, then end of input).</summary>
    public void ReleaseSecrets()
    {
        var stdin = _stdin ?? throw new InvalidOperationException("the app was not started early, or was already released");
        _stdin = null;
        try
        {
            stdin.Write("ready\n");
            stdin.Flush();
            stdin.Dispose();
        }
        catch (IOException)
        {
            // The app is gone (broken pipe): WaitReadyAsync reports its exit.
        }
    }

    private static AppProcess Start(IReadOnlyList<string> command, SecretBundle bundle, string secretsDir, int appPort, string? appSocket, bool early)
    {
        var info = new ProcessStartInfo(command[0]) { UseShellExecute = false, RedirectStandardInput = early };
        foreach (var arg in command.Skip(1).Concat(bundle.Argv))
        {
            info.ArgumentList.Add(arg);
        }

        Tls.SystemTrustStore.RestoreFor(info);
        foreach (var (name, value) in bundle.Env)
        {
            info.Environment[name] = value;
        }

        // The agent's report token is for its own report: not the app's, even when the agent was started without
        // AgentCli (which removes it from the environment the app would inherit).
        Telemetry.ReportTokenHandOver.RemoveFrom(info.Environment);

        // The agent's own contract with the app: where secrets are and which loopback port to serve plain HTTP on.
        info.Environment["MORPH_SECRETS_DIR"] = secretsDir;
        // A socket replaces the port (AgentOptions.AppSocket): no PORT, so the app cannot serve on TCP by mistake.
        if (appSocket is not null)
        {
            info.Environment[AgentOptions.AppSocketVariable] = appSocket;
            info.Environment.Remove("PORT");
        }
        else
        {
            info.Environment["PORT"] = appPort.ToString(System.Globalization.CultureInfo.InvariantCulture);
            info.Environment.Remove(AgentOptions.AppSocketVariable);
        }
        if (early)
        {
            info.Environment["MORPH_SECRETS_READY"] = "stdin";
        }
        else
        {
            // An app started normally has its secrets already; a value inherited from elsewhere must not make it wait.
            info.Environment.Remove("MORPH_SECRETS_READY");
        }

        var process = Process.Start(info) ?? throw new AgentException(AgentExitCodes.AppNotReady, $"could not start {command[0]}");
        var app = new AppProcess(process) { _stdin = early ? process.StandardInput : null };
        app.Exited = app.WaitAsync();
        return app;
    }

    /// <summary>How often readiness is probed: the probe sits on the cold-start path, and a refused loopback connect costs microseconds.</summary>
    internal static readonly TimeSpan ReadyPollInterval = TimeSpan.FromMilliseconds(2);

    /// <summary>Waits until the app accepts an HTTP request on loopback, or fails when it exits or the timeout passes.</summary>
    public Task WaitReadyAsync(int port, TimeSpan timeout, TimeProvider time, CancellationToken ct) =>
        WaitReadyAsync(new IPEndPoint(IPAddress.Loopback, port), timeout, time, ct);

    /// <summary>Waits until the app accepts an HTTP request at <paramref name="app"/> (loopback TCP or a UNIX domain socket).</summary>
    public async Task WaitReadyAsync(EndPoint app, TimeSpan timeout, TimeProvider time, CancellationToken ct)
    {
        var where = app is IPEndPoint tcp ? $"127.0.0.1:{tcp.Port}" : $"unix:{app}";
        using var http = new HttpClient(new SocketsHttpHandler
        {
            // The request goes where the app serves, whatever the URL's host says.
            ConnectCallback = async (_, token) =>
            {
                var socket = Tls.TlsTerminator.AppSocket(app);
                try
                {
                    await socket.ConnectAsync(app, token).ConfigureAwait(false);
                    return new NetworkStream(socket, ownsSocket: true);
                }
                catch
                {
                    socket.Dispose();
                    throw;
                }
            },
        }) { Timeout = TimeSpan.FromSeconds(2) };
        var deadline = time.GetUtcNow() + timeout;
        while (true)
        {
            ct.ThrowIfCancellationRequested();
            if (Exited.IsCompleted)
            {
                throw new AgentException(AgentExitCodes.AppNotReady, $"the app exited with code {await Exited.ConfigureAwait(false)} before answering on {where}");
            }

            // A bare connect until the port accepts (cheap enough to repeat every few milliseconds), then one HTTP request.
            // An answer says something serves there, not that it is the app (AppListener): the terminator would send it
            // every decrypted request.
            if (await AcceptsAsync(app, ct).ConfigureAwait(false) && await AnswersAsync(http, ct).ConfigureAwait(false)
                && (app is not IPEndPoint tcpApp || IsOwnListener(tcpApp.Port, where)))
            {
                return;
            }

            if (time.GetUtcNow() > deadline)
            {
                throw new AgentException(AgentExitCodes.AppNotReady, $"the app did not answer on {where} within {timeout.TotalSeconds:0}s");
            }

            await Task.Delay(ReadyPollInterval, time, ct).ConfigureAwait(false);
        }
    }

    private static async Task<bool> AnswersAsync(HttpClient http, CancellationToken ct)
    {
        try
        {
            // Any HTTP answer counts: readiness means "serving", not "healthy by some app-specific rule".
            using var response = await http.GetAsync("http://localhost/", ct).ConfigureAwait(false);
            return true;
        }
        catch (Exception e) when (e is HttpRequestException or TaskCanceledException && !ct.IsCancellationRequested)
        {
            // Listening but not answering HTTP yet: probe again.
            return false;
        }
    }

    /// <summary>
    /// The readiness check of who listens at <paramref name="app"/>, again: a reload may have made the app reopen its
    /// listener, and what opens then is checked as at the start. False when nothing listens there now (or the app has
    /// exited); true on a UNIX domain socket, which needs no check.
    /// </summary>
    /// <exception cref="AgentException">Something else listens there, the app's listener lets others join it, or neither can be told (exit 7).</exception>
    public bool CheckListener(EndPoint app) =>
        app is not IPEndPoint tcp || (!Exited.IsCompleted && IsOwnListener(tcp.Port, $"127.0.0.1:{tcp.Port}"));

    // True when every socket that takes 127.0.0.1:port is the app's or its children's and none lets another process bind
    // beside it; false when none listens any more (probe again). A UNIX socket needs no such check: it is a path in the
    // instance's own directory.
    private bool IsOwnListener(int port, string where)
    {
        AppListener.Verdict verdict;
        IReadOnlyList<ulong> sockets;
        try
        {
            verdict = AppListener.Check(port, _process.Id, out sockets);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            // Fail closed: an unchecked listener may be anyone's.
            throw new AgentException(AgentExitCodes.AppNotReady, $"cannot tell whether the app is what answers on {where}: {e.Message}");
        }

        return verdict switch
        {
            AppListener.Verdict.Owned => true,
            AppListener.Verdict.NotListening => false,
            AppListener.Verdict.Shared => throw new AgentException(AgentExitCodes.AppNotReady, $"the app's listener on {where} (socket inode {string.Join(", ", sockets)}) has SO_REUSEPORT set: another process of its user could bind the same port beside it, and the kernel would send it a share of the decrypted requests; not serving. Listen without SO_REUSEPORT (Envoy: enable_reuse_port: false on the listener; nginx: no reuseport on the listen directive; gunicorn: no --reuse-port)"),
            _ => throw new AgentException(AgentExitCodes.AppNotReady, $"something other than the app (pid {_process.Id}) or its children listens on {where} (socket inode {string.Join(", ", sockets)}): another process took the app's port and would be sent every decrypted request; not serving"),
        };
    }

    private static async Task<bool> AcceptsAsync(EndPoint app, CancellationToken ct)
    {
        using var probe = Tls.TlsTerminator.AppSocket(app);
        try
        {
            await probe.ConnectAsync(app, ct).ConfigureAwait(false);

            // A connect given the probed port as its source connects to itself, not to the app; the HTTP request
            // would fail anyway, but this way the probe says what it means.
            return !(app is IPEndPoint target && probe.LocalEndPoint is IPEndPoint local && local.Port == target.Port);
        }
        catch (SocketException)
        {
            return false;
        }
    }

    /// <summary>Sends SIGHUP (the app reloads its secret files).</summary>
    public bool Reload() => Posix.Signal(_process.Id, Posix.SigHup);

    /// <summary>Forwards SIGTERM and waits up to <paramref name="drain"/>, then kills; returns the exit code.</summary>
    public async Task<int> StopAsync(TimeSpan drain, TimeProvider time)
    {
        if (!Exited.IsCompleted)
        {
            Posix.Signal(_process.Id, Posix.SigTerm);
            var finished = await Task.WhenAny(Exited, Task.Delay(drain, time)).ConfigureAwait(false);
            if (finished != Exited)
            {
                if (KillTreeForTests is { } kill)
                {
                    kill(_process.Id);
                }
                else
                {
                    _process.Kill(entireProcessTree: true);
                }
            }
        }

        return await Exited.ConfigureAwait(false);
    }

    private async Task<int> WaitAsync()
    {
        await _process.WaitForExitAsync().ConfigureAwait(false);
        return _process.ExitCode;
    }

    /// <inheritdoc />
    public void Dispose()
    {
        // Closing an unreleased app's input tells it that no secrets will come.
        _stdin?.Dispose();
        _process.Dispose();
    }
}
