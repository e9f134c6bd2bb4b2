using System.Diagnostics;
using System.Globalization;
using System.Net;
using System.Net.Sockets;

namespace Morphisms.Bench.Load;

/// <summary>
/// nginx as an SNI-routing TCP proxy — <c>stream { ssl_preread on; }</c> with the server name mapped to the instance —
/// run as a child process with its own prefix, config, pid file and logs in a temporary directory, and stopped on
/// dispose. The reference the SNI gateway is held against: the same job (read the ClientHello's SNI, pick a backend,
/// splice bytes), done by a C event loop. <c>bash bench/setup.sh</c> installs it.
/// </summary>
internal sealed class NginxStreamProxy : IAsyncDisposable
{
    private const string StreamModule = "/usr/lib/nginx/modules/ngx_stream_module.so";

    private readonly Process _process;
    private readonly string _dir;

    private NginxStreamProxy(Process process, string dir, IPEndPoint endPoint, string config)
    {
        _process = process;
        _dir = dir;
        EndPoint = endPoint;
        Config = config;
    }

    public IPEndPoint EndPoint { get; }

    public string Config { get; }

    public string Version { get; private set; } = "";

    public int ProcessId => _process.Id;

    /// <summary>CPU time of the master and its workers so far (utime + stime from /proc).</summary>
    public TimeSpan CpuTime => ProcessCpu.OfTree(_process.Id);

    public static async Task<NginxStreamProxy> StartAsync(string serverName, IPEndPoint backend, CancellationToken ct)
    {
        var nginx = FindNginx() ?? throw new InvalidOperationException("nginx not found: run `bash bench/setup.sh` (Debian: nginx + libnginx-mod-stream)");
        if (!File.Exists(StreamModule))
        {
            throw new InvalidOperationException($"no nginx stream module at {StreamModule}: run `bash bench/setup.sh`");
        }

        var dir = Directory.CreateTempSubdirectory("morph-bench-nginx-").FullName;
        var port = FreePort();
        // worker_processes auto (= 2 here): nginx gets every core the .NET gateway's thread pool gets.
        // `user` only matters as root: workers drop to nobody, who needs nothing in this directory but the logs the
        // master opened. proxy_buffer_size is nginx's default 16k, the gateway's copy buffer size.
        var config = string.Create(CultureInfo.InvariantCulture, $$"""
            load_module {{StreamModule}};
            worker_processes auto;
            pid {{dir}}/nginx.pid;
            error_log {{dir}}/error.log warn;
            events { worker_connections 4096; }
            stream {
                map $ssl_preread_server_name $instance {
                    {{serverName}} {{backend}};
                    default 127.0.0.1:1;
                }
                server {
                    listen 127.0.0.1:{{port}} reuseport backlog=4096;
                    ssl_preread on;
                    proxy_pass $instance;
                    proxy_connect_timeout 5s;
                    tcp_nodelay on;
                }
            }
            """);
        var file = Path.Combine(dir, "nginx.conf");
        await File.WriteAllTextAsync(file, config, ct);
        var info = new ProcessStartInfo(nginx)
        {
            RedirectStandardError = true,
            RedirectStandardOutput = true,
            UseShellExecute = false,
        };
        foreach (var arg in new[] { "-p", dir, "-c", file, "-e", Path.Combine(dir, "error.log"), "-g", "daemon off;" })
        {
            info.ArgumentList.Add(arg);
        }

        var process = Process.Start(info) ?? throw new InvalidOperationException("nginx did not start");
        var proxy = new NginxStreamProxy(process, dir, new IPEndPoint(IPAddress.Loopback, port), config);
        proxy.Version = await NginxVersionAsync(nginx, ct);
        var deadline = Stopwatch.GetTimestamp() + (5 * Stopwatch.Frequency);
        while (true)
        {
            if (process.HasExited)
            {
                var log = File.Exists(Path.Combine(dir, "error.log")) ? await File.ReadAllTextAsync(Path.Combine(dir, "error.log"), ct) : "";
                throw new InvalidOperationException($"nginx exited with {process.ExitCode}: {await process.StandardError.ReadToEndAsync(ct)}{log}");
            }

            try
            {
                using var probe = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
                await probe.ConnectAsync(proxy.EndPoint, ct);
                return proxy;
            }
            catch (SocketException) when (Stopwatch.GetTimestamp() < deadline)
            {
                await Task.Delay(50, ct);
            }
        }
    }

    private static string? FindNginx() =>
        new[] { "/usr/sbin/nginx", "/usr/bin/nginx" }.FirstOrDefault(File.Exists);

    private static async Task<string> NginxVersionAsync(string nginx, CancellationToken ct)
    {
        var info = new ProcessStartInfo(nginx, "-v") { RedirectStandardError = true, UseShellExecute = false };
        using var process = Process.Start(info)!;
        var text = await process.StandardError.ReadToEndAsync(ct);
        await process.WaitForExitAsync(ct);
        return text.Trim();
    }

    private static int FreePort()
    {
        using var socket = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
        socket.Bind(new IPEndPoint(IPAddress.Loopback, 0));
        return ((IPEndPoint)socket.LocalEndPoint!).Port;
    }

    public async ValueTask DisposeAsync()
    {
        if (!_process.HasExited)
        {
            // SIGQUIT: graceful shutdown of master and workers (SIGTERM would be the fast one; either is fine here).
            using (var kill = Process.Start("kill", ["-QUIT", _process.Id.ToString(CultureInfo.InvariantCulture)]))
            {
                await kill.WaitForExitAsync();
            }

            using var wait = new CancellationTokenSource(TimeSpan.FromSeconds(5));
            try
            {
                await _process.WaitForExitAsync(wait.Token);
            }
            catch (OperationCanceledException)
            {
                _process.Kill(entireProcessTree: true);
            }
        }

        _process.Dispose();
        try
        {
            Directory.Delete(_dir, recursive: true);
        }
        catch (IOException)
        {
            // best effort
        }
    }
}

/// <summary>CPU time of processes and their descendants, from /proc (Linux).</summary>
internal static class ProcessCpu
{
    private const double TicksPerSecond = 100; // USER_HZ: 100 on every Linux the bench runs on

    public static TimeSpan OfTree(int root) => Sum(Snapshot(), [root]);

    /// <summary>The trees under <paramref name="parent"/>'s children, except <paramref name="excluded"/> ones.</summary>
    public static TimeSpan OfChildren(int parent, IReadOnlySet<int> excluded)
    {
        var snapshot = Snapshot();
        return Sum(snapshot, snapshot.Where(p => p.Value.Parent == parent && !excluded.Contains(p.Key)).Select(p => p.Key));
    }

    private static Dictionary<int, (int Parent, double Ticks)> Snapshot()
    {
        var processes = new Dictionary<int, (int Parent, double Ticks)>();
        foreach (var dir in Directory.EnumerateDirectories("/proc"))
        {
            if (!int.TryParse(Path.GetFileName(dir), out var pid))
            {
                continue;
            }

            string stat;
            try
            {
                stat = File.ReadAllText(Path.Combine(dir, "stat"));
            }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException)
            {
                continue; // exited meanwhile
            }

            // Fields after "(comm) ": state ppid … utime stime (14th and 15th of the whole line).
            var fields = stat[(stat.LastIndexOf(')') + 2)..].Split(' ');
            processes[pid] = (int.Parse(fields[1], CultureInfo.InvariantCulture),
                double.Parse(fields[11], CultureInfo.InvariantCulture) + double.Parse(fields[12], CultureInfo.InvariantCulture));
        }

        return processes;
    }

    private static TimeSpan Sum(Dictionary<int, (int Parent, double Ticks)> processes, IEnumerable<int> roots)
    {
        var children = processes.GroupBy(p => p.Value.Parent).ToDictionary(g => g.Key, g => g.Select(p => p.Key).ToArray());
        double ticks = 0;
        var stack = new Stack<int>(roots);
        while (stack.TryPop(out var pid))
        {
            ticks += processes.TryGetValue(pid, out var p) ? p.Ticks : 0;
            foreach (var child in children.GetValueOrDefault(pid) ?? [])
            {
                stack.Push(child);
            }
        }

        return TimeSpan.FromSeconds(ticks / TicksPerSecond);
    }
}
