using System.Net;
using System.Net.Sockets;
using System.Runtime.InteropServices;
using System.Text;

namespace Morphisms.Agent.Tests;

/// <summary>
/// The test assembly's own entry point: the function app the agent starts (<c>dotnet Morphisms.Agent.Tests.dll app
/// --marker FILE</c>). A compiled helper rather than python3 or busybox, which a fresh Debian 12 with the .NET SDK
/// may lack; only the SDK the tests already need is assumed. It serves plain HTTP/1.1 (keep-alive) on
/// <c>127.0.0.1:$PORT</c> and answers every request with what it was provisioned: the <c>greeting</c> secret file
/// (read per request), the <c>GREETING</c> env var, its argv and how many SIGHUPs it got. The xunit runner never calls it.
/// With <c>--linger-ms N</c> it drains for N ms after SIGTERM. With <c>--reuse-port</c> its listener has SO_REUSEPORT; with
/// <c>--reuse-port-after-hup</c> it gets it at the first SIGHUP, which reopens the listener, as a reload may. With <c>--hang-up N</c> it closes its first N connections
/// unanswered, as a server still wiring up its HTTP pipeline can, and appends <c>;hung-up N</c> to the marker. <c>trust-probe [--hide]</c> prints the size of the OS trust store, with or without <c>SystemTrustStore.Hide</c>.
/// With <c>TEST_APP_PARENT_REPORT=FILE</c> the app first writes there what it can read of its parent, the agent.
/// </summary>
public static class TestAppEntry
{
    private static int _hups;

    // What a SIGHUP does besides being counted (--reuse-port-after-hup).
    private static Action? _onHup;

    /// <summary>Runs the app until SIGTERM.</summary>
    public static async Task<int> Main(string[] args)
    {
        if (args is ["trust-probe", ..])
        {
            return TrustProbe(hide: args.Contains("--hide"));
        }

        if (args.Length == 0 || args[0] != "app")
        {
            await Console.Error.WriteLineAsync("usage: app [--marker FILE] [ARGS...] | trust-probe [--hide]");
            return 2;
        }

        // What the agent passed on of the OS trust-store variables (it hides them from itself, not from the app), and
        // whether its report token reached the app (it must not).
        if (Environment.GetEnvironmentVariable("TEST_APP_ENV_REPORT") is { Length: > 0 } report)
        {
            await File.WriteAllTextAsync(report, $"SSL_CERT_FILE={Environment.GetEnvironmentVariable("SSL_CERT_FILE") ?? "(unset)"}\nSSL_CERT_DIR={Environment.GetEnvironmentVariable("SSL_CERT_DIR") ?? "(unset)"}\nMORPH_REPORT_TOKEN={Environment.GetEnvironmentVariable("MORPH_REPORT_TOKEN") ?? "(unset)"}\nMORPH_REPORT_TOKEN_FILE={Environment.GetEnvironmentVariable("MORPH_REPORT_TOKEN_FILE") ?? "(unset)"}");
        }

        // What the app, running as the agent's own user, can read of the agent (its parent): it must not get at the
        // agent's environment or memory, while it is itself dumpable as usual.
        if (Environment.GetEnvironmentVariable("TEST_APP_PARENT_REPORT") is { Length: > 0 } parentReport)
        {
            await File.WriteAllTextAsync(parentReport, ProbeParent());
        }

        var marker = Array.IndexOf(args, "--marker") is var i and >= 0 && i + 1 < args.Length ? args[i + 1] : null;
        if (marker is not null)
        {
            await File.WriteAllTextAsync(marker, "started");
        }

        using var stop = new CancellationTokenSource();
        using var hup = PosixSignalRegistration.Create(PosixSignal.SIGHUP, c =>
        {
            c.Cancel = true;
            Volatile.Read(ref _onHup)?.Invoke();
            Interlocked.Increment(ref _hups);
        });
        using var term = PosixSignalRegistration.Create(PosixSignal.SIGTERM, c => { c.Cancel = true; stop.Cancel(); });

        // Started early (AppStart.Early): no secret, no port until morph-init writes "ready"; the marker records
        // whether it ever got that far, so tests can tell "never released" from "never started".
        if (Environment.GetEnvironmentVariable("MORPH_SECRETS_READY") == "stdin")
        {
            using var stdin = new StreamReader(Console.OpenStandardInput());

            // A blocking pipe read does not observe cancellation: SIGTERM wins the race instead.
            var reading = stdin.ReadLineAsync();
            var stopped = Task.Delay(Timeout.Infinite, stop.Token).ContinueWith(_ => (string?)null, TaskScheduler.Default);
            var line = await await Task.WhenAny(reading, stopped);

            if (marker is not null)
            {
                await File.AppendAllTextAsync(marker, line == "ready" ? ";released" : ";not-released");
            }

            if (line != "ready")
            {
                return 3;
            }
        }

        var port = int.Parse(Environment.GetEnvironmentVariable("PORT")!, System.Globalization.CultureInfo.InvariantCulture);
        var listener = Listen(port, reusePort: args.Contains("--reuse-port"));
        if (args.Contains("--reuse-port-after-hup"))
        {
            Volatile.Write(ref _onHup, () =>
            {
                Interlocked.Exchange(ref _onHup, null);
                listener.Stop();
                listener = Listen(port, reusePort: true);
            });
        }

        var hangUps = Array.IndexOf(args, "--hang-up") is var h and >= 0 && h + 1 < args.Length ? int.Parse(args[h + 1], System.Globalization.CultureInfo.InvariantCulture) : 0;
        var hungUp = hangUps;
        try
        {
            while (!stop.IsCancellationRequested)
            {
                TcpClient client;
                try
                {
                    client = await listener.AcceptTcpClientAsync(stop.Token);
                }
                catch (Exception e) when (e is SocketException or ObjectDisposedException or InvalidOperationException && !stop.IsCancellationRequested)
                {
                    // Reopened by a SIGHUP: accept on the new listener.
                    await Task.Delay(10);
                    continue;
                }

                if (hangUps > 0)
                {
                    client.Dispose();
                    if (--hangUps == 0 && marker is not null)
                    {
                        await File.AppendAllTextAsync(marker, $";hung-up {hungUp}");
                    }

                    continue;
                }

                _ = ServeAsync(client, args);
            }
        }
        catch (OperationCanceledException)
        {
        }

        listener.Stop();

        // --linger-ms N: an app that drains for a while after SIGTERM (new connections refused, open ones still served),
        // recording in the marker that it got the signal.
        if (Array.IndexOf(args, "--linger-ms") is var l and >= 0 && l + 1 < args.Length)
        {
            if (marker is not null)
            {
                await File.AppendAllTextAsync(marker, ";draining");
            }

            await Task.Delay(int.Parse(args[l + 1], System.Globalization.CultureInfo.InvariantCulture));
        }

        return 0;
    }

    private static TcpListener Listen(int port, bool reusePort)
    {
        var listener = new TcpListener(IPAddress.Loopback, port);
        if (reusePort)
        {
            listener.Server.SetRawSocketOption(1, 15, BitConverter.GetBytes(1)); // SOL_SOCKET, SO_REUSEPORT
        }

        listener.Start();
        return listener;
    }

    /// <summary>
    /// <c>environ=…;mem=…;self_dumpable=N</c>: whether this process can read its parent's <c>/proc/PID/environ</c> (and
    /// whether the report token is in it) and open its <c>/proc/PID/mem</c>, and its own dumpable flag.
    /// </summary>
    private static string ProbeParent()
    {
        // /proc/self/stat: "pid (comm) state ppid ..."; comm may hold spaces, so read after the last ')'.
        var stat = File.ReadAllText("/proc/self/stat");
        var parent = int.Parse(stat[(stat.LastIndexOf(')') + 2)..].Split(' ')[1], System.Globalization.CultureInfo.InvariantCulture);
        var environ = Probe(() => Encoding.UTF8.GetString(File.ReadAllBytes($"/proc/{parent}/environ")).Contains("MORPH_REPORT_TOKEN=", StringComparison.Ordinal)
            ? "readable (MORPH_REPORT_TOKEN in it)"
            : "readable");
        var mem = Probe(() =>
        {
            using var _ = File.OpenRead($"/proc/{parent}/mem");
            return "openable";
        });
        return $"environ={environ};mem={mem};self_dumpable={Morphisms.Agent.App.Posix.Prctl(Morphisms.Agent.App.Posix.PrGetDumpable, 0)}";

        static string Probe(Func<string> read)
        {
            try
            {
                return read();
            }
            catch (UnauthorizedAccessException)
            {
                return "denied";
            }
            catch (IOException e)
            {
                return $"error ({e.Message})";
            }
        }
    }

    /// <summary>Prints how many CA certificates the OS trust store gives this process, after hiding it or not.</summary>
    private static int TrustProbe(bool hide)
    {
        if (hide)
        {
            Morphisms.Agent.Tls.SystemTrustStore.Hide();
        }

        using var store = new System.Security.Cryptography.X509Certificates.X509Store(
            System.Security.Cryptography.X509Certificates.StoreName.Root, System.Security.Cryptography.X509Certificates.StoreLocation.LocalMachine);
        store.Open(System.Security.Cryptography.X509Certificates.OpenFlags.ReadOnly);
        Console.WriteLine(store.Certificates.Count);
        return 0;
    }

    private static async Task ServeAsync(TcpClient client, string[] args)
    {
        using var _ = client;
        var stream = client.GetStream();
        var reader = new StreamReader(stream, Encoding.ASCII);
        try
        {
            while (true)
            {
                var line = await reader.ReadLineAsync();
                if (line is null)
                {
                    return;
                }

                while (!string.IsNullOrEmpty(await reader.ReadLineAsync()))
                {
                }

                var dir = Environment.GetEnvironmentVariable("MORPH_SECRETS_DIR")!;
                var greeting = File.Exists(Path.Combine(dir, "greeting")) ? await File.ReadAllTextAsync(Path.Combine(dir, "greeting")) : "";
                var body = Encoding.UTF8.GetBytes($"greeting={greeting};env={Environment.GetEnvironmentVariable("GREETING")};argv={string.Join(',', args.Skip(1))};hups={Volatile.Read(ref _hups)};pid={Environment.ProcessId}");
                var head = Encoding.ASCII.GetBytes($"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: {body.Length}\r\n\r\n");
                await stream.WriteAsync(head);
                await stream.WriteAsync(body);
            }
        }
        catch (IOException)
        {
        }
    }
}
