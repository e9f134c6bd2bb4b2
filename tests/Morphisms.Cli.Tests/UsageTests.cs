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
    public async Task An_unknown_top_level_command_points_to_the_root_help()
    {
        var outcome = await MorphRunner.RunAsync("frobnicate");
        Assert.EndsWith("Run 'morph --help' for usage." + Environment.NewLine, outcome.Stderr, StringComparison.Ordinal);
    }

    /// <summary>A parse error points to the help of the command it is about, whose options are the ones that matter.</summary>
    [Theory]
    [InlineData("morph logs", "logs", "fn", "--lines", "abc")]
    [InlineData("morph kms kv put", "kms", "kv", "put")]
    [InlineData("morph kms", "kms", "frobnicate")]
    [InlineData("morph evidence verify", "evidence", "verify", "--tee", "tpm", "--evidence", "x")]
    public async Task A_parse_error_points_to_the_failing_subcommand_s_help(string command, params string[] args)
    {
        var outcome = await MorphRunner.RunAsync(args);
        Assert.Equal(ExitCodes.UsageOrInput, outcome.ExitCode);
        Assert.EndsWith($"Run '{command} --help' for usage." + Environment.NewLine, outcome.Stderr, StringComparison.Ordinal);
    }

    /// <summary>A value that does not convert is named by the option as typed and what it takes, not by a .NET type.</summary>
    [Theory]
    [InlineData("-n expects an integer, got 'abc'", "logs", "fn", "-n", "abc")]
    [InlineData("--lines expects an integer, got '1.5'", "logs", "fn", "--lines", "1.5")]
    [InlineData("-n expects an integer from -2147483648 to 2147483647, got '99999999999'", "logs", "fn", "-n", "99999999999")]
    [InlineData("--key-shares expects an integer, got 'five'", "kms", "init", "--key-shares", "five")]
    public async Task A_value_of_the_wrong_type_is_named_without_dotnet_type_names(string message, params string[] args)
    {
        var outcome = await MorphRunner.RunAsync(args);
        Assert.Equal(ExitCodes.UsageOrInput, outcome.ExitCode);
        Assert.Contains($"morph: {message}" + Environment.NewLine, outcome.Stderr, StringComparison.Ordinal);
        Assert.DoesNotContain("System.", outcome.Stderr, StringComparison.Ordinal);
    }

    /// <summary>A bare <c>morph</c> (or command group) has nothing to run: it prints its help, still exiting 2.</summary>
    [Theory]
    [InlineData(new string[0], new[] { "evidence", "kms", "invoke", "up" })]
    [InlineData(new[] { "kms" }, new[] { "kv", "policy", "server" })]
    public async Task A_bare_command_group_prints_its_help(string[] args, string[] subcommands)
    {
        var outcome = await MorphRunner.RunAsync(args);
        Assert.Equal(ExitCodes.UsageOrInput, outcome.ExitCode);
        Assert.Contains("Usage:", outcome.Stdout, StringComparison.Ordinal);
        Assert.All(subcommands, name => Assert.Contains($"  {name} ", outcome.Stdout, StringComparison.Ordinal));
        Assert.DoesNotContain("Required command", outcome.Stderr, StringComparison.Ordinal);
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
