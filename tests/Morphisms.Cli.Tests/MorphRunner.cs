namespace Morphisms.Cli.Tests;

/// <summary>Runs the <c>morph</c> command tree in-process and captures what it prints.</summary>
public static class MorphRunner
{
    public sealed record Outcome(int ExitCode, string Stdout, string Stderr);

    public static async Task<Outcome> RunAsync(params string[] args)
    {
        using var stdout = new StringWriter();
        using var stderr = new StringWriter();
        var code = await MorphCli.RunAsync(args, stdout, stderr);
        return new Outcome(code, stdout.ToString(), stderr.ToString());
    }
}
