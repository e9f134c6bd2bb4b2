using Morphisms.Kms;

namespace Morphisms.Kms.Tests;

/// <summary>
/// The test assembly's own entry point, so crash tests can run the KMS as a real child process
/// (<c>dotnet Morphisms.Kms.Tests.dll kms-host --listen ... --storage sqlite:...</c>) without a separate host
/// project. It calls <see cref="KmsServer"/> exactly as <c>morph kms server</c> will. The test runner never
/// calls it: xunit loads this assembly as a library.
/// </summary>
public static class KmsHostEntry
{
    /// <summary>Runs the KMS until stdin closes or the process is killed; prints <c>listening URL</c> when ready.</summary>
    public static async Task<int> Main(string[] args)
    {
        if (args.Length == 0 || args[0] != "kms-host")
        {
            await Console.Error.WriteLineAsync("usage: kms-host --listen HOST:PORT --storage sqlite:PATH [--audit FILE] [--dev]");
            return 2;
        }

        string Arg(string name, string fallback)
        {
            var i = Array.IndexOf(args, name);
            return i >= 0 && i + 1 < args.Length ? args[i + 1] : fallback;
        }

        var options = new KmsServerOptions
        {
            Listen = Arg("--listen", "127.0.0.1:0"),
            Storage = Arg("--storage", "inmem"),
            AuditLogPath = Array.IndexOf(args, "--audit") >= 0 ? Arg("--audit", "") : null,
            Dev = args.Contains("--dev"),
            WarningWriter = TextWriter.Null,
        };
        await using var server = new KmsServer(options);
        await server.StartAsync();
        Console.WriteLine($"listening {server.BaseAddress}");
        Console.Out.Flush();

        // The parent ends a clean run by closing stdin; a crash test kills the process instead.
        await Task.Run(() => Console.In.ReadToEnd());
        return 0;
    }
}
