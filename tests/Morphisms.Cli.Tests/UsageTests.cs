namespace Morphisms.Cli.Tests;

public class UsageTests
{
    [Fact]
    public async Task Unknown_command_is_a_usage_error()
    {
        var outcome = await MorphRunner.RunAsync("frobnicate");
        Assert.Equal(ExitCodes.UsageOrInput, outcome.ExitCode);
        Assert.Contains("frobnicate", outcome.Stderr);
    }

    [Fact]
    public async Task Help_succeeds_and_lists_the_evidence_commands()
    {
        var outcome = await MorphRunner.RunAsync("evidence", "--help");
        Assert.Equal(ExitCodes.Ok, outcome.ExitCode);
        Assert.Contains("verify", outcome.Stdout);
        Assert.Contains("show", outcome.Stdout);
    }
}
