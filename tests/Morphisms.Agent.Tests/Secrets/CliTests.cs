namespace Morphisms.Agent.Tests.Secrets;

/// <summary>The command line: usage errors exit 2 before anything is contacted.</summary>
public sealed class CliTests
{
    [Theory]
    [InlineData("--function", "f", "--kms-ca-sha256", "00", "--", "app")]
    [InlineData("--kms", "https://127.0.0.1:1", "--kms-ca-sha256", "00", "--", "app")]
    [InlineData("--kms", "https://127.0.0.1:1", "--function", "f", "--kms-ca-sha256", "00")]
    [InlineData("--kms", "https://127.0.0.1:1", "--function", "f", "--tee", "sev", "--kms-ca-sha256", "00", "--", "app")]
    [InlineData("--kms", "https://127.0.0.1:1", "--function", "f", "--kms-ca-sha256", "not-hex", "--", "app")]
    [InlineData("--kms", "https://127.0.0.1:1", "--function", "f", "--tee", "sim", "--sim-host-data", "xyz", "--", "app")]
    [InlineData("--kms", "https://127.0.0.1:1", "--function", "f", "--kms-ca-sha256", "00", "--app-start", "soon", "--", "app")]
    public async Task UsageErrors_ExitTwo(params string[] args)
    {
        var stderr = new StringWriter();
        Assert.Equal(AgentExitCodes.Usage, await AgentCli.RunAsync(args, TextWriter.Null, stderr, default));
        Assert.StartsWith("morph-init:", stderr.ToString());
    }

    [Theory]
    [InlineData("--kms-ca", "/nonexistent/kms-ca.pem")]
    [InlineData("--kms-ca", "/dev/null")]
    [InlineData("--launch-config", "/nonexistent/launch.json")]
    public async Task AnUnreadableFileArgument_ExitsTwo_NamingTheFile(string option, string file)
    {
        // A usage error, not a crash: one line naming the option and the file.
        var stderr = new StringWriter();
        var code = await AgentCli.RunAsync(
            ["--kms", "https://127.0.0.1:1", "--function", "f", "--tee", "sim", option, file, "--", "app"], TextWriter.Null, stderr, default);
        Assert.Equal(AgentExitCodes.Usage, code);
        Assert.StartsWith($"morph-init: {option} {file}:", stderr.ToString());
    }

    [Fact]
    public async Task TeeSimWithoutItsState_IsAUsageError()
    {
        var stderr = new StringWriter();
        var code = await AgentCli.RunAsync(
            ["--kms", "https://127.0.0.1:1", "--function", "f", "--tee", "sim", "--kms-ca-sha256", new string('a', 64), "--", "app"], TextWriter.Null, stderr, default);
        Assert.Equal(AgentExitCodes.Usage, code);
        Assert.Contains("--sim-dir", stderr.ToString());
    }

    [Fact]
    public async Task NoPinAnywhere_ExitsNoMeasuredPin_BeforeContactingTheKms()
    {
        // A missing pin is no longer a usage error: it may come from the TEE, so the agent asks the TEE first.
        using var harness = new AgentHarness("pinless");
        var stderr = new StringWriter();
        var code = await AgentCli.RunAsync(
            ["--kms", "https://127.0.0.1:1", "--function", "pinless", "--tee", "sim", "--sim-dir", harness.SimDir, "--bundle", harness.BundleDir, "--", "app"],
            TextWriter.Null, stderr, default);
        Assert.Equal(AgentExitCodes.NoMeasuredPin, code);
        Assert.Contains("no KMS CA pin", stderr.ToString());
        Assert.DoesNotContain("unreachable", stderr.ToString());
    }
}
