using System.Text.Json.Nodes;

namespace Morphisms.Agent.Tests.EndToEnd;

/// <summary>
/// A KMS answer that parses as JSON but holds a string System.Text.Json cannot decode (a lone surrogate escape, in a
/// key or a value), or has a field of the wrong shape (an array or a string where an object belongs), is a malformed
/// answer, like one that is not JSON at all: never an internal error (exit 70). At a cold start it exits as if the KMS
/// were unreachable; while running it is logged as <c>kms_unavailable</c> and retried, and the app keeps serving.
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

    [Theory]
    [InlineData("""{"data":[]}""")]
    [InlineData("""{"data":"nonce"}""")]
    public async Task AChallengeAnswerOfTheWrongShape_IsAMalformedAnswer(string answer)
    {
        var (code, log) = await RunAsync(
            "shape-challenge",
            new JsonObject { ["files"] = new JsonObject { ["greeting"] = "v1" } },
            _ => ProxyFault.None,
            (path, _, _) => path == "/v1/auth/attest/challenge" ? answer : null);

        Assert.Equal(AgentExitCodes.KmsUnavailable, code);
        Assert.Contains("malformed response", log);
        Assert.Contains("data is not an object", log);
    }

    [Fact]
    public async Task ASecretAnswerWhoseMetadataIsNotAnObject_IsASecretsError()
    {
        var (code, log) = await RunAsync(
            "shape-kv",
            new JsonObject { ["files"] = new JsonObject { ["greeting"] = "v1" } },
            _ => ProxyFault.None,
            (path, _, _) => path.StartsWith("/v1/secret/", StringComparison.Ordinal) ? """{"data":{"metadata":[],"data":{}}}""" : null);

        Assert.Equal(AgentExitCodes.Secrets, code);
        Assert.Contains("data.metadata is not an object", log);
    }

    [Fact]
    public async Task ARenewalAnswerOfTheWrongShape_IsLoggedAndRetried_AndTheAppKeepsServing()
    {
        using var harness = new AgentHarness("shape-renew");
        await using var kms = await AgentKms.StartAsync(harness.SimDir);

        // A 4 s token: renewed from 2 s on, every answer spoilt.
        await kms.RegisterAsync("shape-renew", harness.Measurement, tokenTtl: "4s", tokenMaxTtl: "1h");
        await kms.PutBundleAsync("shape-renew", new JsonObject { ["files"] = new JsonObject { ["greeting"] = "v1" } });
        await using var proxy = await KmsProxy.StartAsync(kms, (_, _) => ProxyFault.None, (path, _, _) => path == "/v1/auth/token/renew-self" ? """{"auth":"x"}""" : null);
        await RunningAsync(harness, proxy, kms, "auth is not an object");
    }

    [Fact]
    public async Task ASecretPathThatIsNotAKvPath_AtAReattestation_IsLoggedAndRetried_AndTheAppKeepsServing()
    {
        // A token that cannot be renewed to its full TTL: the agent re-attests about every second, and every login
        // after the cold start's names a path outside KV.
        using var harness = new AgentHarness("shape-path");
        await using var kms = await AgentKms.StartAsync(harness.SimDir);
        await kms.RegisterAsync("shape-path", harness.Measurement, tokenTtl: "2s", tokenMaxTtl: "2s");
        await kms.PutBundleAsync("shape-path", new JsonObject { ["files"] = new JsonObject { ["greeting"] = "v1" } });
        await using var proxy = await KmsProxy.StartAsync(kms, (_, _) => ProxyFault.None, (path, before, answer) =>
        {
            if (path != "/v1/auth/attest/login" || before == 0)
            {
                return null;
            }

            var body = JsonNode.Parse(answer)!.AsObject();
            body["data"]!["secret_path"] = "../sys/seal";
            return body.ToJsonString();
        });
        await RunningAsync(harness, proxy, kms, "not a KV path");
    }

    // Runs the agent through the proxy until the malformed answer has been logged, at least twice (so retried), and
    // checks the app still runs and the agent stops cleanly.
    private static async Task RunningAsync(AgentHarness harness, KmsProxy proxy, AgentKms kms, string expected)
    {
        var log = new LogSink();
        var agent = new Agent(harness.Options(proxy.BaseAddress, kms.Pin, log), harness.LaunchConfig);
        using var stop = new CancellationTokenSource();
        var run = agent.RunAsync(stop.Token);
        await agent.Ready.WaitAsync(TimeSpan.FromSeconds(60));
        await Eventually.Until(() => run.IsCompleted || Count(log.Text, "\"event\":\"kms_unavailable\"") >= 2, "the malformed answer logged and retried");

        Assert.False(run.IsCompleted, log.Text);
        Assert.Contains(expected, log.Text);
        Assert.DoesNotContain("\"event\":\"deprovisioned\"", log.Text);
        Assert.True(File.Exists(Path.Combine(harness.SecretsDir, "greeting")), "the app keeps its secrets");
        await stop.CancelAsync();
        Assert.Equal(0, await run.WaitAsync(TimeSpan.FromSeconds(30)));
    }

    private static int Count(string text, string what) => (text.Length - text.Replace(what, "", StringComparison.Ordinal).Length) / what.Length;

    private static async Task<(int Code, string Log)> RunAsync(string function, JsonObject bundle, Func<string, ProxyFault> fault, Func<string, int, string, string?>? rewrite = null)
    {
        using var harness = new AgentHarness(function);
        await using var kms = await AgentKms.StartAsync(harness.SimDir);
        await kms.RegisterAsync(function, harness.Measurement);
        await kms.PutBundleAsync(function, bundle);
        await using var proxy = await KmsProxy.StartAsync(kms, (path, _) => fault(path), rewrite);
        var log = new LogSink();
        var code = await new Agent(harness.Options(proxy.BaseAddress, kms.Pin, log), harness.LaunchConfig).RunAsync(default).WaitAsync(TimeSpan.FromSeconds(60));

        Assert.DoesNotContain("internal error", log.Text);
        Assert.False(File.Exists(harness.Marker));
        return (code, log.Text);
    }
}
