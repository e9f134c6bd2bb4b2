using System.Diagnostics;

namespace Morphisms.Kms.Tests;

/// <summary>The KMS as a real child process (this test assembly's <see cref="KmsHostEntry"/>), for crash tests.</summary>
public sealed class KmsProcess : IDisposable
{
    private readonly Process _process;

    private KmsProcess(Process process, Uri baseAddress)
    {
        _process = process;
        BaseAddress = baseAddress;
    }

    /// <summary>Where it listens.</summary>
    public Uri BaseAddress { get; }

    /// <summary>Starts <c>dotnet Morphisms.Kms.Tests.dll kms-host ARGS</c> and waits for its <c>listening</c> line.</summary>
    public static async Task<KmsProcess> StartAsync(params string[] args)
    {
        var start = new ProcessStartInfo("dotnet")
        {
            RedirectStandardInput = true,
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
        };
        start.ArgumentList.Add(typeof(KmsHostEntry).Assembly.Location);
        start.ArgumentList.Add("kms-host");
        foreach (var a in args)
        {
            start.ArgumentList.Add(a);
        }

        var process = Process.Start(start) ?? throw new InvalidOperationException("could not start dotnet");
        using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(60));
        while (true)
        {
            var line = await process.StandardOutput.ReadLineAsync(timeout.Token);
            if (line is null)
            {
                var error = await process.StandardError.ReadToEndAsync(timeout.Token);
                throw new InvalidOperationException($"the KMS host exited before listening: {error}");
            }

            if (line.StartsWith("listening ", StringComparison.Ordinal))
            {
                return new KmsProcess(process, new Uri(line["listening ".Length..]));
            }
        }
    }

    /// <summary>SIGKILL: no shutdown code runs, nothing is flushed by the process.</summary>
    public void Kill()
    {
        _process.Kill(entireProcessTree: true);
        _process.WaitForExit(10_000);
    }

    /// <summary>Stops the process cleanly (closes its stdin) or kills it if it does not exit.</summary>
    public void Dispose()
    {
        if (!_process.HasExited)
        {
            _process.StandardInput.Close();
            if (!_process.WaitForExit(15_000))
            {
                Kill();
            }
        }

        _process.Dispose();
    }
}
