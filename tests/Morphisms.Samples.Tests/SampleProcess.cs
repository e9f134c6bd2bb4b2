using System.Diagnostics;
using System.Net;
using System.Net.Sockets;
using System.Reflection;
using System.Runtime.InteropServices;
using System.Text;

namespace Morphisms.Samples.Tests;

/// <summary>A sample started as a real process (<c>dotnet Sample.dll</c>) on a free loopback port.</summary>
internal sealed partial class SampleProcess : IAsyncDisposable
{
    private static readonly TimeSpan ReadyTimeout = TimeSpan.FromSeconds(60);
    private readonly Process _process;
    private readonly StringBuilder _stderr = new();

    private SampleProcess(Process process, int port)
    {
        _process = process;
        Port = port;
        Client = new HttpClient { BaseAddress = new Uri($"http://127.0.0.1:{port}/"), Timeout = TimeSpan.FromSeconds(30) };
    }

    public int Port { get; }

    public HttpClient Client { get; }

    /// <summary>Whether the sample has exited.</summary>
    public bool HasExited => _process.HasExited;

    public int Pid => _process.Id;

    /// <summary>The process's standard input (only when launched with <c>redirectInput</c>).</summary>
    public StreamWriter StandardInput => _process.StandardInput;

    /// <summary>What the process wrote to stderr so far.</summary>
    public string Stderr
    {
        get
        {
            lock (_stderr)
            {
                return _stderr.ToString();
            }
        }
    }

    /// <summary>The built sample, e.g. <c>Locate("Signer")</c>: the path stamped in by the test project's build.</summary>
    public static string Locate(string assemblyName)
    {
        var path = Environment.GetEnvironmentVariable($"MORPH_SAMPLE_{assemblyName.ToUpperInvariant()}_DLL")
            ?? typeof(SampleProcess).Assembly.GetCustomAttributes<AssemblyMetadataAttribute>()
                .FirstOrDefault(a => a.Key == $"Sample:{assemblyName}")?.Value
            ?? throw new InvalidOperationException($"no Sample:{assemblyName} metadata: is the sample a ProjectReference with OutputItemType=SampleApp?");
        return File.Exists(path) ? path : throw new FileNotFoundException($"sample {assemblyName} not built at {path}", path);
    }

    /// <summary>Starts the sample without waiting for it.</summary>
    public static SampleProcess Launch(string assemblyName, IReadOnlyDictionary<string, string>? environment = null, int? port = null, bool redirectInput = false)
    {
        var dll = Locate(assemblyName);
        var chosen = port ?? TestProcesses.FreePort();
        var info = new ProcessStartInfo(TestProcesses.DotnetHost)
        {
            RedirectStandardError = true,
            RedirectStandardOutput = true,
            RedirectStandardInput = redirectInput,
            UseShellExecute = false,
            WorkingDirectory = Path.GetDirectoryName(dll)!,
        };
        info.ArgumentList.Add(dll);
        info.Environment["PORT"] = chosen.ToString(System.Globalization.CultureInfo.InvariantCulture);
        foreach (var name in new[] { "MORPH_SECRETS_DIR", "MORPH_FUNCTION", "MORPH_REVISION", "K_SERVICE", "K_REVISION", "LOG_LEVEL", "SIGNER_MAX_MESSAGE_BYTES", "MORPH_SECRETS_READY", "SIGNER_GENERATE_KEY", "MORPH_APP_SOCKET" })
        {
            info.Environment.Remove(name);
        }

        foreach (var (name, value) in environment ?? new Dictionary<string, string>())
        {
            info.Environment[name] = value;
        }

        var process = new Process { StartInfo = info, EnableRaisingEvents = true };
        var sample = new SampleProcess(process, chosen);
        process.ErrorDataReceived += (_, e) =>
        {
            if (e.Data is not null)
            {
                lock (sample._stderr)
                {
                    sample._stderr.AppendLine(e.Data);
                }
            }
        };
        process.OutputDataReceived += (_, _) => { };
        process.Start();
        process.BeginErrorReadLine();
        process.BeginOutputReadLine();
        return sample;
    }

    /// <summary>Starts the sample and waits for <c>GET /healthz</c> to answer 200.</summary>
    public static async Task<SampleProcess> StartAsync(string assemblyName, IReadOnlyDictionary<string, string>? environment = null)
    {
        var sample = Launch(assemblyName, environment);
        try
        {
            await sample.WaitHealthyAsync();
            return sample;
        }
        catch
        {
            await sample.DisposeAsync();
            throw;
        }
    }

    public async Task WaitHealthyAsync()
    {
        var deadline = Stopwatch.StartNew();
        while (true)
        {
            if (_process.HasExited)
            {
                await _process.WaitForExitAsync();
                throw new InvalidOperationException($"sample exited with {_process.ExitCode} before it was healthy: {Stderr}");
            }

            try
            {
                using var response = await Client.GetAsync("healthz");
                if (response.StatusCode == HttpStatusCode.OK)
                {
                    return;
                }
            }
            catch (HttpRequestException)
            {
                // Not listening yet.
            }

            if (deadline.Elapsed > ReadyTimeout)
            {
                throw new TimeoutException($"sample not healthy after {ReadyTimeout}: {Stderr}");
            }

            await Task.Delay(25);
        }
    }

    /// <summary>Waits for the process to exit and returns its exit code.</summary>
    public async Task<int> WaitForExitAsync(TimeSpan timeout)
    {
        using var cts = new CancellationTokenSource(timeout);
        await _process.WaitForExitAsync(cts.Token);
        return _process.ExitCode;
    }

    public void Signal(int signal)
    {
        if (Kill(_process.Id, signal) != 0)
        {
            throw new InvalidOperationException($"kill({_process.Id}, {signal}) failed: errno {Marshal.GetLastPInvokeError()}");
        }
    }

    public async ValueTask DisposeAsync()
    {
        Client.Dispose();
        if (!_process.HasExited)
        {
            try
            {
                _process.Kill(entireProcessTree: true);
            }
            catch (InvalidOperationException)
            {
                // Exited meanwhile.
            }
        }

        using var cts = new CancellationTokenSource(TimeSpan.FromSeconds(10));
        try
        {
            await _process.WaitForExitAsync(cts.Token);
        }
        catch (OperationCanceledException)
        {
            // Leave it to the OS; the test already failed or passed.
        }

        _process.Dispose();
    }

    public const int SIGHUP = 1;
    public const int SIGTERM = 15;

    [LibraryImport("libc", EntryPoint = "kill", SetLastError = true)]
    private static partial int Kill(int pid, int signal);
}
