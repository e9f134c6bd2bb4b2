namespace Morphisms.Cli.Tests.Kms;

/// <summary>
/// Input files have a size cap: <c>--data-file /dev/zero</c> (or a huge file by mistake) is a usage error naming the
/// file, not an OutOfMemoryException that crashes the command.
/// </summary>
public sealed class KmsInputLimitTests
{
    [Theory]
    [InlineData("kv", "put", "secret/app", "--data-file", "/dev/zero")]
    [InlineData("policy", "write", "app", "/dev/zero")]
    [InlineData("unseal", "--key-file", "/dev/zero")]
    [InlineData("function", "register", "fn", "--file", "/dev/zero")]
    public async Task An_endless_input_file_is_refused_with_exit_2_naming_it(params string[] args)
    {
        await using var kms = await CliKms.StartDevAsync();

        var outcome = await kms.RunAsync(args);

        Assert.Equal(ExitCodes.UsageOrInput, outcome.ExitCode);
        Assert.Contains("/dev/zero", outcome.Stderr, StringComparison.Ordinal);
        Assert.Contains("larger than", outcome.Stderr, StringComparison.Ordinal);
    }

    [Fact]
    public async Task An_endless_token_file_is_refused_with_exit_2_naming_it()
    {
        await using var kms = await CliKms.StartDevAsync();

        var outcome = await MorphRunner.RunAsync("kms", "policy", "list", "--address", kms.Address, "--token-file", "/dev/zero");

        Assert.Equal(ExitCodes.UsageOrInput, outcome.ExitCode);
        Assert.Contains("--token-file: /dev/zero", outcome.Stderr, StringComparison.Ordinal);
    }

    [Fact]
    public async Task A_data_file_just_over_1_MiB_is_refused_and_a_small_one_is_read()
    {
        await using var kms = await CliKms.StartDevAsync();
        var file = Path.Combine(kms.Directory, "big.json");
        await File.WriteAllTextAsync(file, "{\"v\":\"" + new string('x', 1024 * 1024 - 8) + "\"}" + "\n\n");

        var refused = await kms.RunAsync("kv", "put", "secret/big", "--data-file", file);
        Assert.Equal(ExitCodes.UsageOrInput, refused.ExitCode);
        Assert.Contains($"--data-file: {file} is larger than 1 MiB", refused.Stderr, StringComparison.Ordinal);

        // Under the cap it is read as before.
        await File.WriteAllTextAsync(file, "{\"v\":\"" + new string('x', 1000) + "\"}");
        Assert.Equal(ExitCodes.Ok, (await kms.RunAsync("kv", "put", "secret/big", "--data-file", file)).ExitCode);
    }
}
