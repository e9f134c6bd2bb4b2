using System.Text.Json.Nodes;

namespace Morphisms.Agent.Tests.EndToEnd;

/// <summary>
/// A KMS answer that parses as JSON but holds a string System.Text.Json cannot decode (a lone surrogate escape, in a
/// key or a value) is a malformed answer, like one that is not JSON at all: never an internal error (exit 70).
/// </summary>
public sealed class MalformedKmsAnswerTests
{
    [Fact]
    public async Task ALoneSurrogateKeyInTheChallengeAnswer_IsAMalformedAnswer()
    {
        var (code, log) = await RunAsync(
            "surrogate-key",
            new JsonObject { ["files"] = new JsonObject { ["greeting"] = "v1" } },
            path => path == "/v1/auth/attest/challenge" ? ProxyFault.LoneSurrogateKey : ProxyFault.None);

        Assert.Equal(AgentExitCodes.KmsUnavailable, code);
        Assert.Contains("malformed response", log);
        Assert.Contains("auth/attest/challenge", log);
    }

    [Theory]
    [InlineData(true)]
    [InlineData(false)]
    public async Task ALoneSurrogateInTheSecretBundle_IsASecretsError(bool inAKey)
    {
        var files = inAKey
            ? new JsonObject { [KmsProxy.LoneSurrogateMarker] = "v1" }
            : new JsonObject { ["greeting"] = KmsProxy.LoneSurrogateMarker };
        var (code, log) = await RunAsync(
            "surrogate-bundle",
            new JsonObject { ["files"] = files },
            path => path.StartsWith("/v1/secret/", StringComparison.Ordinal) ? ProxyFault.LoneSurrogateMarked : ProxyFault.None);

        Assert.Equal(AgentExitCodes.Secrets, code);
        Assert.Contains("cannot use the secret bundle", log);
    }

    private static async Task<(int Code, string Log)> RunAsync(string function, JsonObject bundle, Func<string, ProxyFault> fault)
    {
        using var harness = new AgentHarness(function);
        await using var kms = await AgentKms.StartAsync(harness.SimDir);
        await kms.RegisterAsync(function, harness.Measurement);
        await kms.PutBundleAsync(function, bundle);
        await using var proxy = await KmsProxy.StartAsync(kms, (path, _) => fault(path));
        var log = new LogSink();
        var code = await new Agent(harness.Options(proxy.BaseAddress, kms.Pin, log), harness.LaunchConfig).RunAsync(default).WaitAsync(TimeSpan.FromSeconds(60));

        Assert.DoesNotContain("internal error", log.Text);
        Assert.False(File.Exists(harness.Marker));
        return (code, log.Text);
    }
}
