using Morphisms.Cli.Tests.Kms;

namespace Morphisms.Cli.Tests;

/// <summary>
/// Without a running <c>morph up</c> and without the options that stand in for it, every command that needs one says so,
/// naming the state file it looked for, and exits 1 (nothing to talk to is a failure, not a usage error: DESIGN.md §4) —
/// <c>morph invoke</c> and <c>morph kms</c> as <c>morph ls</c> and <c>morph deploy</c> already did.
/// </summary>
[Collection(MorphismsHomeCollection.Name)]
public sealed class NoMorphUpTests
{
    [Theory]
    [InlineData("invoke", "signer")]
    [InlineData("kms", "kv", "get", "secret/x")]
    [InlineData("kms", "status")]
    [InlineData("ls")]
    [InlineData("deploy", "FUNCTION_DIR")]
    public Task Every_command_exits_1_without_a_morph_up(params string[] args) =>
        InEmptyHomeAsync(async home =>
        {
            // deploy refuses a directory without a spec first (exit 2), so it gets one to reach the missing morph up.
            var function = Path.Combine(home, "function");
            Directory.CreateDirectory(function);
            await File.WriteAllTextAsync(Path.Combine(function, "function.yaml"), "name: hello\n");
            var outcome = await MorphRunner.RunAsync([.. args.Select(a => a == "FUNCTION_DIR" ? function : a)]);
            Assert.Equal(ExitCodes.Rejected, outcome.ExitCode);
            ErrorPathTests.AssertNoStackTrace(outcome);
        });

    /// <summary>
    /// <c>morph kms</c> with no address anywhere names the missing <c>morph up</c> and the options, not a token or a
    /// connection refused on a guessed address.
    /// </summary>
    [Theory]
    [InlineData("kv", "get", "secret/x")]
    [InlineData("status")]
    public Task Kms_without_an_address_names_the_missing_morph_up(params string[] args) =>
        InEmptyHomeAsync(async home =>
        {
            var outcome = await MorphRunner.RunAsync(["kms", .. args]);
            Assert.Equal(ExitCodes.Rejected, outcome.ExitCode);
            Assert.Contains($"morph: no `morph up` is running (no {Path.Combine(home, "data", "up.json")}): start one, or give the KMS's address with --address URL or MORPH_KMS_ADDR", outcome.Stderr, StringComparison.Ordinal);
            Assert.DoesNotContain("token", outcome.Stderr, StringComparison.Ordinal);
            Assert.DoesNotContain("8200", outcome.Stderr, StringComparison.Ordinal);
        });

    /// <summary>An up.json a stopped <c>morph up</c> left behind is named as such.</summary>
    [Fact]
    public Task An_up_json_left_by_a_stopped_morph_up_is_named() =>
        InEmptyHomeAsync(async home =>
        {
            var file = Path.Combine(home, "data", "up.json");
            Directory.CreateDirectory(Path.GetDirectoryName(file)!);
            // A pid no process has: the kernel's pid_max is at most 2^22.
            await File.WriteAllTextAsync(file, """{"kms_url":"https://127.0.0.1:1/","kms_ca_file":"x","kms_ca_sha256":"00","token_file":"x","gateway":"127.0.0.1:1","domain":"fn.example","control":"http://127.0.0.1:1/","pid":99999999}""");

            var kms = await MorphRunner.RunAsync("kms", "status");
            Assert.Equal(ExitCodes.Rejected, kms.ExitCode);
            Assert.Contains($"no `morph up` is running ({file} is left from one that stopped)", kms.Stderr, StringComparison.Ordinal);
            var invoke = await MorphRunner.RunAsync("invoke", "signer");
            Assert.Equal(ExitCodes.Rejected, invoke.ExitCode);
            Assert.Contains($"no `morph up` is running ({file} is left from one that stopped): start one, or pass --kms URL --gateway IP:PORT", invoke.Stderr, StringComparison.Ordinal);
        });

    [Fact]
    public Task Invoke_without_a_morph_up_names_it_and_the_options() =>
        InEmptyHomeAsync(async home =>
        {
            var outcome = await MorphRunner.RunAsync("invoke", "signer");
            Assert.Contains($"morph: no `morph up` is running (no {Path.Combine(home, "data", "up.json")}): start one, or pass --kms URL --gateway IP:PORT", outcome.Stderr, StringComparison.Ordinal);
        });

    /// <summary>Runs <paramref name="test"/> with MORPHISMS_HOME an empty directory and no KMS address or token in the environment.</summary>
    internal static async Task InEmptyHomeAsync(Func<string, Task> test)
    {
        var home = Directory.CreateTempSubdirectory("morph-noup-").FullName;
        var names = new[] { "MORPHISMS_HOME", "MORPH_KMS_ADDR", "MORPH_KMS_TOKEN", "MORPH_KMS_CACERT" };
        var previous = names.Select(Environment.GetEnvironmentVariable).ToArray();
        Environment.SetEnvironmentVariable("MORPHISMS_HOME", home);
        foreach (var name in names[1..])
        {
            Environment.SetEnvironmentVariable(name, null);
        }

        try
        {
            await test(home);
        }
        finally
        {
            for (var i = 0; i < names.Length; i++)
            {
                Environment.SetEnvironmentVariable(names[i], previous[i]);
            }

            Directory.Delete(home, recursive: true);
        }
    }
}
