namespace Morphisms.Cli.Tests;

/// <summary>
/// Binary input files have a size cap: <c>--evidence /dev/zero</c> (or a huge file named by mistake) is a usage error
/// naming the file, not an OutOfMemoryException that crashes the command.
/// </summary>
public sealed class BinaryInputLimitTests
{
    [Theory]
    [InlineData("evidence", "verify", "--tee", "snp", "--evidence", "/dev/zero")]
    [InlineData("evidence", "verify", "--tee", "snp", "--evidence", "/dev/null", "--vcek", "/dev/zero")]
    [InlineData("evidence", "verify", "--tee", "snp", "--evidence", "/dev/null", "--crl", "/dev/zero")]
    [InlineData("evidence", "show", "--tee", "sgx", "--evidence", "/dev/zero")]
    [InlineData("measure", "sgx", "--sigstruct", "/dev/zero")]
    public async Task An_endless_input_file_is_refused_with_exit_2_naming_it(params string[] args)
    {
        var outcome = await MorphRunner.RunAsync(args);

        Assert.Equal(ExitCodes.UsageOrInput, outcome.ExitCode);
        Assert.Contains("/dev/zero is larger than 4 MiB", outcome.Stderr, StringComparison.Ordinal);
        ErrorPathTests.AssertNoStackTrace(outcome);
    }

    /// <summary>A collateral file's length is checked before it is read, but /dev/zero (like a pipe) says 0 and never ends.</summary>
    [Fact]
    public async Task An_endless_collateral_file_is_refused_with_exit_2_naming_it()
    {
        var outcome = await MorphRunner.RunAsync("evidence", "verify", "--tee", "sgx", "--evidence", "/dev/null", "--collateral", "/dev/zero");

        Assert.Equal(ExitCodes.UsageOrInput, outcome.ExitCode);
        Assert.Contains("--collateral: /dev/zero: ", outcome.Stderr, StringComparison.Ordinal);
        Assert.Contains("too large for a collateral file", outcome.Stderr, StringComparison.Ordinal);
        ErrorPathTests.AssertNoStackTrace(outcome);
    }

    [Fact]
    public async Task Evidence_just_over_4_MiB_is_refused_and_a_small_file_is_read_as_before()
    {
        var file = Path.GetTempFileName();
        try
        {
            await File.WriteAllBytesAsync(file, new byte[(4 * 1024 * 1024) + 1]);
            var refused = await MorphRunner.RunAsync("evidence", "show", "--tee", "snp", "--evidence", file);
            Assert.Equal(ExitCodes.UsageOrInput, refused.ExitCode);
            Assert.Contains($"{file} is larger than 4 MiB", refused.Stderr, StringComparison.Ordinal);

            // Under the cap the bytes reach the parser, which names what is wrong with them.
            await File.WriteAllBytesAsync(file, new byte[100]);
            var parsed = await MorphRunner.RunAsync("evidence", "show", "--tee", "snp", "--evidence", file);
            Assert.Equal(ExitCodes.UsageOrInput, parsed.ExitCode);
            Assert.DoesNotContain("larger than", parsed.Stderr, StringComparison.Ordinal);
        }
        finally
        {
            File.Delete(file);
        }
    }
}
