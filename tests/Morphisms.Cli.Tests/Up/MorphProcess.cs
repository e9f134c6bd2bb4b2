using System.Diagnostics;
using System.Reflection;
using System.Text;

namespace Morphisms.Cli.Tests.Up;

/// <summary>The built <c>morph.dll</c> run as a real process with its own <c>MORPHISMS_HOME</c>.</summary>
public sealed class MorphProcess : IAsyncDisposable
{
    private readonly Process _process;
    private readonly StringBuilder _stdout = new();
    private readonly StringBuilder _stderr = new();
    private readonly Lock _gate = new();

    private MorphProcess(Process process) => _process = process;

    /// <summary>The morph.dll the build produced (stamped into this assembly by the project file).</summary>
    public static string MorphDll
    {
        get
        {
            var path = typeof(MorphProcess).Assembly.GetCustomAttributes<AssemblyMetadataAttribute>().Single(a => a.Key == "MorphDll").Value!;
            Assert.True(File.Exists(path), $"morph.dll not built at {path}");
            return path;
        }
    }

    public string Stdout { get { lock (_gate) { return _stdout.ToString(); } } }

    public string Stderr { get { lock (_gate) { return _stderr.ToString(); } } }

    public int Pid => _process.Id;

    public bool HasExited => _process.HasExited;

    public static MorphProcess Start(string home, params string[] args) => Start(home, new Dictionary<string, string>(), args);

    /// <summary>Starts morph with <paramref name="environment"/> added to its environment (this process's is left alone).</summary>
    public static MorphProcess Start(string home, IReadOnlyDictionary<string, string> environment, params string[] args)
    {
        var info = new ProcessStartInfo(TestProcesses.DotnetHost)
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
        };
        info.ArgumentList.Add(MorphDll);
        foreach (var arg in args)
        {
            info.ArgumentList.Add(arg);
        }

        info.Environment["MORPHISMS_HOME"] = home;
        foreach (var (name, value) in environment)
        {
            info.Environment[name] = value;
        }
        var process = new Process { StartInfo = info };
        var morph = new MorphProcess(process);
        process.OutputDataReceived += (_, e) => morph.Append(morph._stdout, e.Data);
        process.ErrorDataReceived += (_, e) => morph.Append(morph._stderr, e.Data);
        process.Start();
        process.BeginOutputReadLine();
        process.BeginErrorReadLine();
        return morph;
    }

    /// <summary>Waits until stdout contains <paramref name="text"/> (fails if the process exits first).</summary>
    public async Task WaitForAsync(string text, int seconds = 60)
    {
        var deadline = DateTime.UtcNow.AddSeconds(seconds);
        while (!Stdout.Contains(text, StringComparison.Ordinal))
        {
            if (_process.HasExited)
            {
                Assert.Fail($"morph exited ({_process.ExitCode}) before printing '{text}':\n{Stdout}\n{Stderr}");
            }

            Assert.True(DateTime.UtcNow < deadline, $"morph did not print '{text}' in {seconds} s:\n{Stdout}\n{Stderr}");
            await Task.Delay(50);
        }
    }

    /// <summary>Sends SIGINT (what Ctrl-C sends).</summary>
    public void Interrupt()
    {
        using var kill = Process.Start("kill", ["-INT", _process.Id.ToString(System.Globalization.CultureInfo.InvariantCulture)]);
        kill.WaitForExit();
    }

    public async Task<int> ExitAsync(int seconds = 60)
    {
        using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(seconds));
        await _process.WaitForExitAsync(timeout.Token);
        _process.WaitForExit(); // flushes the asynchronous output readers
        return _process.ExitCode;
    }

    public async ValueTask DisposeAsync()
    {
        if (!_process.HasExited)
        {
            _process.Kill(entireProcessTree: true);
            await _process.WaitForExitAsync();
        }

        _process.Dispose();
    }

    private void Append(StringBuilder target, string? line)
    {
        if (line is null)
        {
            return;
        }

        lock (_gate)
        {
            target.AppendLine(line);
        }
    }
}
