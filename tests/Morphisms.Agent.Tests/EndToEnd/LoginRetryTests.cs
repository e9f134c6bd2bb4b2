using System.Text.Json.Nodes;

namespace Morphisms.Agent.Tests.EndToEnd;

/// <summary>
/// A login whose answer is lost (a 5xx or a dropped connection after the KMS handled it) is never sent again: the KMS
/// spent its nonce, so the same body would be refused as a replay. The agent starts the round again instead.
/// </summary>
public sealed class LoginRetryTests
{
    [Theory]
    [InlineData(ProxyFault.ServiceUnavailable)]
    [InlineData(ProxyFault.Drop)]
    public async Task ALostLoginAnswer_StartsANewRound_WithAFreshChallenge(ProxyFault fault)
    {
        using var harness = new AgentHarness("retrier");
        await using var kms = await AgentKms.StartAsync(harness.SimDir);
        await kms.RegisterAsync("retrier", harness.Measurement);
        await kms.PutBundleAsync("retrier", new JsonObject { ["files"] = new JsonObject { ["greeting"] = "v1" } });
        await using var proxy = await KmsProxy.StartAsync(kms, (path, before) => path == "/v1/auth/attest/login" && before == 0 ? fault : ProxyFault.None);
        var log = new LogSink();
        var agent = new Agent(harness.Options(proxy.BaseAddress, kms.Pin, log), harness.LaunchConfig);
        using var stop = new CancellationTokenSource();
        var run = agent.RunAsync(stop.Token);
        await Task.WhenAny(agent.Ready, run).WaitAsync(TimeSpan.FromSeconds(60));
        Assert.True(agent.Ready.IsCompletedSuccessfully, log.Text);

        var attest = proxy.Paths.Where(p => p.StartsWith("/v1/auth/attest/", StringComparison.Ordinal)).ToList();
        Assert.Equal(["/v1/auth/attest/challenge", "/v1/auth/attest/login", "/v1/auth/attest/challenge", "/v1/auth/attest/login"], attest);
        Assert.Equal("v1", File.ReadAllText(Path.Combine(harness.SecretsDir, "greeting")));

        await stop.CancelAsync();
        Assert.Equal(0, await run.WaitAsync(TimeSpan.FromSeconds(30)));
    }
}
