using Morphisms.Cli.Tests.Kms;

namespace Morphisms.Cli.Tests;

/// <summary>
/// A directory named where a file is read is reported as such (exit 2), not as "file not found" nor as .NET's "Access to
/// the path is denied", which sends the user to check permissions instead of the path.
/// </summary>
public sealed class DirectoryInputTests : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("morph-dir-input-").FullName;

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    [Theory]
    [InlineData("--evidence", "evidence verify --tee snp --evidence DIR")]
    [InlineData("--vcek", "evidence verify --tee snp --evidence FILE --vcek DIR")]
    [InlineData("--crl", "evidence verify --tee snp --evidence FILE --crl DIR")]
    [InlineData("", "evidence show --tee snp --evidence DIR")]
    [InlineData("", "measure sgx --sigstruct DIR")]
    [InlineData("", "kms audit verify DIR")]
    [InlineData("--tls-cert", "kms server --dev --listen 127.0.0.1:0 --tls-cert DIR --tls-key DIR")]
    public async Task A_directory_given_as_a_local_file_is_named_as_one(string option, string command)
    {
        var file = Path.Combine(_dir, "file");
        await File.WriteAllBytesAsync(file, new byte[16]);

        var outcome = await MorphRunner.RunAsync(command.Replace("DIR", _dir, StringComparison.Ordinal).Replace("FILE", file, StringComparison.Ordinal).Split(' '));

        AssertNamesTheDirectory(outcome, option);
    }

    [Theory]
    [InlineData("--data-file", "kv put secret/app --data-file DIR")]
    [InlineData("file", "policy write app DIR")]
    [InlineData("--key-file", "unseal --key-file DIR")]
    [InlineData("--file", "function register fn --file DIR")]
    [InlineData("--output", "init --output DIR")]
    public async Task A_directory_given_to_a_kms_command_is_named_as_one(string option, string command)
    {
        await using var kms = await CliKms.StartDevAsync();

        var outcome = await kms.RunAsync(command.Replace("DIR", _dir, StringComparison.Ordinal).Split(' '));

        AssertNamesTheDirectory(outcome, option);
    }

    [Fact]
    public async Task A_directory_given_as_the_token_file_is_named_as_one()
    {
        await using var kms = await CliKms.StartDevAsync();

        var outcome = await MorphRunner.RunAsync("kms", "policy", "list", "--address", kms.Address, "--token-file", _dir);

        AssertNamesTheDirectory(outcome, "--token-file");
    }

    private void AssertNamesTheDirectory(MorphRunner.Outcome outcome, string option)
    {
        Assert.Equal(ExitCodes.UsageOrInput, outcome.ExitCode);
        var prefix = option.Length > 0 ? $"morph: {option}: " : "morph: ";
        Assert.Contains($"{prefix}{_dir} is a directory, not a file", outcome.Stderr, StringComparison.Ordinal);
        Assert.DoesNotContain("denied", outcome.Stderr, StringComparison.Ordinal);
        Assert.DoesNotContain("not found", outcome.Stderr, StringComparison.Ordinal);
        ErrorPathTests.AssertNoStackTrace(outcome);
    }
}
