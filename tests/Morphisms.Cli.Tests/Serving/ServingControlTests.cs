using Morphisms.Cli.Commands.Serving;
using Morphisms.Cli.Tests.Kms;
using Morphisms.Serving.Hosting;

namespace Morphisms.Cli.Tests.Serving;

/// <summary>
/// The serving commands' client must pass the control API's Host check (loopback names only), send the control token
/// from the token file, and send it nowhere but this machine.
/// </summary>
[Collection(MorphismsHomeCollection.Name)]
public sealed class ServingControlTests : IDisposable
{
    private const string JsonType = "application/json";
    private readonly string _home = Directory.CreateTempSubdirectory("morph-control-").FullName;
    private readonly string? _previousHome = Environment.GetEnvironmentVariable("MORPHISMS_HOME");
    private readonly BearerToken _token = BearerToken.New();

    public ServingControlTests()
    {
        Environment.SetEnvironmentVariable("MORPHISMS_HOME", _home);
        Directory.CreateDirectory(DataDir);
        _token.WriteFile(TokenFile);
    }

    private string DataDir => Path.Combine(_home, "data");

    private string TokenFile => Path.Combine(DataDir, ServingStateFile.ControlTokenFileName);

    [Theory]
    [InlineData("http://127.0.0.1:4100")]
    [InlineData("http://127.0.0.1:4100/")]
    [InlineData("http://localhost:4100")]
    [InlineData("http://[::1]:4100")]
    public void ALoopbackControlUrl_KeepsItsOwnHost_AndCarriesTheToken(string url)
    {
        using var http = ServingControl.CreateClient(url, _token);
        Assert.Null(http.DefaultRequestHeaders.Host);
        Assert.EndsWith("/", http.BaseAddress!.ToString());
        Assert.Equal("Bearer", http.DefaultRequestHeaders.Authorization!.Scheme);
        Assert.Equal(_token.Value, http.DefaultRequestHeaders.Authorization.Parameter);
    }

    [Fact]
    public void A_deploy_or_traffic_change_waits_longer_than_the_progress_deadline_the_host_may_wait_for_a_ready_instance()
    {
        // The host answers a deploy once the new revision is ready or its progress deadline passed; a client giving up
        // first (it did at 2 minutes) would tell the user nothing of how it went.
        Assert.True(ServingControl.RolloutTimeout > new Morphisms.Serving.Autoscaling.AutoscalerOptions().ProgressDeadline);
    }

    [Theory]
    [InlineData("http://vm:4100", "localhost:4100")]
    [InlineData("http://serving.local:4200/", "localhost:4200")]
    public void AnotherNameForTheControlApi_SendsHostLocalhost(string url, string expected)
    {
        using var http = ServingControl.CreateClient(url, _token);
        Assert.Equal(expected, http.DefaultRequestHeaders.Host);
    }

    [Fact]
    public async Task TheStateFilesTokenFile_IsReadAndSent_AndTheTokenIsPrintedNowhere()
    {
        await using var host = new FakeHttpServer(_ => new(200, "[]", new Dictionary<string, string> { ["Content-Type"] = JsonType }));
        WriteState(host.Address, TokenFile);

        var outcome = await MorphRunner.RunAsync("ls");

        Assert.True(outcome.ExitCode == 0, outcome.Stderr);
        var request = Assert.Single(host.Requests);
        Assert.Equal($"Bearer {_token.Value}", request.Headers["Authorization"]);
        Assert.DoesNotContain(_token.Value, outcome.Stdout + outcome.Stderr, StringComparison.Ordinal);
    }

    [Fact]
    public async Task AMissingTokenFile_IsNamed_AndNothingIsSent()
    {
        await using var host = new FakeHttpServer(_ => new(200, "[]"));
        var missing = Path.Combine(DataDir, "gone-token");
        WriteState(host.Address, missing);

        var outcome = await MorphRunner.RunAsync("ls");

        Assert.Equal(ExitCodes.Rejected, outcome.ExitCode);
        Assert.Contains($"the control token file {missing} does not exist", outcome.Stderr, StringComparison.Ordinal);
        Assert.Empty(host.Requests);
    }

    [Fact]
    public async Task ATokenFileWithoutAToken_IsNamed_AndItsContentIsNotShown()
    {
        await using var host = new FakeHttpServer(_ => new(200, "[]"));
        var bad = Path.Combine(DataDir, "bad-token");
        await File.WriteAllTextAsync(bad, "not-a-token-but-maybe-a-secret");

        var outcome = await MorphRunner.RunAsync("ls", "--control", host.Address.ToString(), "--control-token-file", bad);

        Assert.Equal(ExitCodes.Rejected, outcome.ExitCode);
        Assert.Contains($"cannot read the control token from {bad}", outcome.Stderr, StringComparison.Ordinal);
        Assert.DoesNotContain("maybe-a-secret", outcome.Stderr, StringComparison.Ordinal);
        Assert.Empty(host.Requests);
    }

    [Fact]
    public async Task AControlUrlWithoutAStateFile_AsksForTheTokenFile()
    {
        var outcome = await MorphRunner.RunAsync("ls", "--control", "http://127.0.0.1:9/");

        Assert.Equal(ExitCodes.Rejected, outcome.ExitCode);
        Assert.Contains("pass --control-token-file FILE", outcome.Stderr, StringComparison.Ordinal);
    }

    [Fact]
    public async Task ARefusedToken_ShowsTheApisError()
    {
        await using var host = new FakeHttpServer(_ => new(401, """{"errors": ["the control API needs 'Authorization: Bearer <control token>'"]}""", new Dictionary<string, string> { ["Content-Type"] = JsonType }));

        var outcome = await MorphRunner.RunAsync("ls", "--control", host.Address.ToString(), "--control-token-file", TokenFile);

        Assert.Equal(ExitCodes.Rejected, outcome.ExitCode);
        Assert.Contains("401: the control API needs", outcome.Stderr, StringComparison.Ordinal);
        Assert.DoesNotContain(_token.Value, outcome.Stderr, StringComparison.Ordinal);
    }

    [Fact]
    public async Task InputTheApiRefuses_Exits2_WithTheApisMessageAlone_AndOtherRefusalsExit1WithTheStatus()
    {
        await using var host = new FakeHttpServer(request => request.Target.Contains("missing", StringComparison.Ordinal)
            ? new(404, """{"errors": ["no function missing"]}""", new Dictionary<string, string> { ["Content-Type"] = JsonType })
            : new(400, """{"errors": ["traffic: percentages sum to 50, not 100"]}""", new Dictionary<string, string> { ["Content-Type"] = JsonType }));

        var refused = await MorphRunner.RunAsync("traffic", "fn", "fn-00001=50", "--control", host.Address.ToString(), "--control-token-file", TokenFile);
        Assert.Equal(ExitCodes.UsageOrInput, refused.ExitCode);
        Assert.Equal("morph: traffic: percentages sum to 50, not 100", refused.Stderr.Trim());

        var unknown = await MorphRunner.RunAsync("revisions", "missing", "--control", host.Address.ToString(), "--control-token-file", TokenFile);
        Assert.Equal(ExitCodes.Rejected, unknown.ExitCode);
        Assert.Equal("morph: 404: no function missing", unknown.Stderr.Trim());
    }

    [Fact]
    public async Task Deploy_OfAPathWithoutASpec_Exits2_WithoutAskingTheHost()
    {
        await using var host = new FakeHttpServer(_ => new(200, "{}", new Dictionary<string, string> { ["Content-Type"] = JsonType }));
        WriteState(host.Address, TokenFile);
        var missing = Path.Combine(_home, "nonexistent");

        var outcome = await MorphRunner.RunAsync("deploy", missing);
        Assert.Equal(ExitCodes.UsageOrInput, outcome.ExitCode);
        Assert.Equal($"morph: no function spec at {missing}", outcome.Stderr.Trim());

        // A directory without function.yaml names the file it looked for.
        outcome = await MorphRunner.RunAsync("deploy", _home);
        Assert.Equal(ExitCodes.UsageOrInput, outcome.ExitCode);
        Assert.Equal($"morph: no function spec at {Path.Combine(_home, "function.yaml")}", outcome.Stderr.Trim());
        Assert.Empty(host.Requests);
    }

    [Fact]
    public async Task AnotherControlUrl_DoesNotGetTheStateFilesToken()
    {
        await using var host = new FakeHttpServer(_ => new(200, "[]", new Dictionary<string, string> { ["Content-Type"] = JsonType }));
        await using var other = new FakeHttpServer(_ => new(200, "[]", new Dictionary<string, string> { ["Content-Type"] = JsonType }));
        WriteState(host.Address, TokenFile);

        var outcome = await MorphRunner.RunAsync("ls", "--control", other.Address.ToString());

        Assert.Equal(ExitCodes.Rejected, outcome.ExitCode);
        Assert.Contains("its token is not sent elsewhere; pass --control-token-file FILE", outcome.Stderr, StringComparison.Ordinal);
        Assert.Empty(other.Requests);

        // Its own URL given explicitly is fine.
        Assert.Equal(0, (await MorphRunner.RunAsync("ls", "--control", host.Address.ToString())).ExitCode);
    }

    [Fact]
    public async Task Rm_WhenTheHostCouldNotDeleteTheKmsRegistration_NamesTheErrorAndWhatToRun_AndExits1()
    {
        await using var host = new FakeHttpServer(_ => new(200, """{"removed":"fn","kms_note":null,"kms_error":"KMS unregistration failed: KMS DELETE v1/morphisms/functions/fn: 503 sealed"}""", new Dictionary<string, string> { ["Content-Type"] = JsonType }));

        foreach (var json in new[] { false, true })
        {
            var outcome = await MorphRunner.RunAsync(["rm", "fn", "--control", host.Address.ToString(), "--control-token-file", TokenFile, .. json ? new[] { "--json" } : []]);

            Assert.Equal(ExitCodes.Rejected, outcome.ExitCode);
            Assert.Contains("503 sealed", outcome.Stderr, StringComparison.Ordinal);
            Assert.Contains("morph kms function delete fn", outcome.Stderr, StringComparison.Ordinal);
            Assert.DoesNotContain("removed fn", outcome.Stdout, StringComparison.Ordinal);
        }
    }

    [Fact]
    public async Task Rm_PrintsTheKmsNote_AndSucceeds()
    {
        await using var host = new FakeHttpServer(_ => new(200, """{"removed":"fn","kms_note":"the KMS keeps the name fn for its owners","kms_error":null}""", new Dictionary<string, string> { ["Content-Type"] = JsonType }));

        var outcome = await MorphRunner.RunAsync("rm", "fn", "--control", host.Address.ToString(), "--control-token-file", TokenFile);

        Assert.True(outcome.ExitCode == ExitCodes.Ok, outcome.Stderr);
        Assert.Contains("removed fn", outcome.Stdout, StringComparison.Ordinal);
        Assert.Contains("the KMS keeps the name fn for its owners", outcome.Stdout + outcome.Stderr, StringComparison.Ordinal);
    }

    [NonLoopbackFact]
    public async Task AControlUrlOffThisMachine_NeverGetsTheToken()
    {
        await using var elsewhere = new FakeHttpServer(_ => new(200, "[]", new Dictionary<string, string> { ["Content-Type"] = JsonType }), KmsTransportTests.NonLoopbackAddress()!);

        var outcome = await MorphRunner.RunAsync("ls", "--control", elsewhere.Address.ToString(), "--control-token-file", TokenFile);

        Assert.Equal(ExitCodes.Rejected, outcome.ExitCode);
        Assert.Contains("is not a loopback address", outcome.Stderr, StringComparison.Ordinal);
        Assert.Empty(elsewhere.Requests);
    }

    public void Dispose()
    {
        Environment.SetEnvironmentVariable("MORPHISMS_HOME", _previousHome);
        Directory.Delete(_home, recursive: true);
    }

    private void WriteState(Uri control, string tokenFile) =>
        new ServingStateFile(control.ToString(), "127.0.0.1:1", "http", Environment.ProcessId, tokenFile).Write(Path.Combine(DataDir, ServingStateFile.FileName));
}
