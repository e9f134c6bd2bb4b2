using System.Net;
using System.Text;
using Morphisms.Serving.Hosting;
using Morphisms.Serving.Runtime;
using Morphisms.Serving.Spec;

namespace Morphisms.Serving.Tests.Hosting;

/// <summary>
/// An instance's cold-start report is authenticated by that instance's own report token, handed to its agent at
/// launch in a 0600 file its environment names: not by the control token (the agent runs beside the function's code),
/// and never by another instance's. The agent here is <see cref="TestFunctions.FakeAgent"/>, which reports only through the control API, so
/// an instance is ready exactly when its report was accepted.
/// </summary>
public sealed class InstanceReportTokenTests(ServingKms kms) : IClassFixture<ServingKms>
{
    [Fact]
    public async Task AnAgentsReport_WithItsOwnToken_IsRecorded()
    {
        using var functions = new TestFunctions();
        await using var host = await functions.HostAsync(GatewayMode.Confidential, kms.Connection, kms.SimDir, morphInit: TestFunctions.FakeAgent);
        var deployed = await host.DeployAsync(functions.Spec("reporter", "a", scale: new ScaleSpec { Min = 1 }), CancellationToken.None);

        await Eventually.True(() => host.Instances.Ready(deployed.Revision).Count == 1, "ready through its report", seconds: 30);
        var process = Assert.Single(host.Supervisor(deployed.Revision)!.Snapshot()).Process;
        Assert.Equal(1234, process.ColdStart!.AttestationMs);
        Assert.DoesNotContain(process.Logs.Snapshot(), l => l.Text.StartsWith("the agent left its report token file", StringComparison.Ordinal));

        // The agent prints the answer after the host has already acted on its report.
        await Eventually.True(() => process.Logs.Snapshot().Any(l => l.Text == "fake agent: report answered 204"), "the agent saw its report answered 204");

        // The token reached the agent through its file, never a command line (which every local user can read) or a log.
        var token = ((ProcessInstance)process).ReportToken!.Value;
        Assert.DoesNotContain(host.Logs("reporter", 1000), l => l.Line.Text.Contains(token, StringComparison.Ordinal));
        Assert.DoesNotContain(token, functions.Log.ToString());
    }

    [Fact]
    public async Task AReportTokenFile_TheAgentLeftBehind_IsDeletedWhenItIsReady_AndSaidInItsLog()
    {
        using var functions = new TestFunctions();
        await using var host = await functions.HostAsync(GatewayMode.Confidential, kms.Connection, kms.SimDir, morphInit: TestFunctions.FakeAgent);
        var spec = functions.Spec("keeper", "a", scale: new ScaleSpec { Min = 1 });
        var deployed = await host.DeployAsync(spec with { Env = new Dictionary<string, string>(spec.Env) { ["FAKE_AGENT_KEEPS_TOKEN_FILE"] = "1" } }, CancellationToken.None);

        await Eventually.True(() => host.Instances.Ready(deployed.Revision).Count == 1, "ready through its report", seconds: 30);
        var process = (ProcessInstance)Assert.Single(host.Supervisor(deployed.Revision)!.Snapshot()).Process;
        Assert.NotNull(process.ReportTokenFile);
        Assert.False(File.Exists(process.ReportTokenFile), "the token file left behind is gone once the instance is ready");
        Assert.Contains(process.Logs.Snapshot(), l => l.Text.StartsWith("the agent left its report token file", StringComparison.Ordinal));
    }

    [Fact]
    public async Task AReport_WithoutItsInstancesToken_Is401_AndNotRecorded()
    {
        using var functions = new TestFunctions();
        await using var host = await functions.HostAsync(GatewayMode.Confidential, kms.Connection, kms.SimDir, morphInit: TestFunctions.FakeAgent);
        var silent = functions.Spec("silent", "a", scale: new ScaleSpec { Min = 2 });
        var spec = silent with { Env = new Dictionary<string, string>(silent.Env) { ["FAKE_AGENT_SILENT"] = "1" } };
        var deployed = await host.DeployAsync(spec, CancellationToken.None);
        await Eventually.True(() => host.Supervisor(deployed.Revision)!.Snapshot().Count == 2, "two instances launched", seconds: 30);
        var instances = host.Supervisor(deployed.Revision)!.Snapshot().Select(p => (ProcessInstance)p.Process).ToList();
        var (target, neighbour) = (instances[0], instances[1]);

        // Only once each agent has taken its token file: a report accepted earlier marks the file as left behind and
        // the host deletes it, which would leave an agent still starting up without its token.
        await Eventually.True(() => instances.All(i => !File.Exists(i.ReportTokenFile)), "both agents took their token files", seconds: 30);
        using var http = new HttpClient { BaseAddress = host.ControlUrl };

        foreach (var authorization in new[]
        {
            null,
            "Bearer " + new string('0', 2 * BearerToken.Bytes),
            neighbour.ReportToken!.AuthorizationValue,
            host.ControlToken.AuthorizationValue,
            "Basic " + target.ReportToken!.Value,
        })
        {
            using var refused = await ReportAsync(http, target.Id, authorization);
            Assert.Equal(HttpStatusCode.Unauthorized, refused.StatusCode);
            Assert.DoesNotContain(target.ReportToken!.Value, await refused.Content.ReadAsStringAsync());
        }

        // An instance's token is no control token either.
        using (var list = new HttpRequestMessage(HttpMethod.Get, "v1/functions"))
        {
            list.Headers.TryAddWithoutValidation("Authorization", target.ReportToken!.AuthorizationValue);
            using var response = await http.SendAsync(list);
            Assert.Equal(HttpStatusCode.Unauthorized, response.StatusCode);
        }

        // The right token with a body that is no report: a 400 naming the problem, and still nothing recorded.
        foreach (var body in new[] { "not json", "[1, 2]", "" })
        {
            using var malformed = await ReportAsync(http, target.Id, target.ReportToken!.AuthorizationValue, body);
            Assert.Equal(HttpStatusCode.BadRequest, malformed.StatusCode);
            Assert.Contains("cold-start report: the body", await malformed.Content.ReadAsStringAsync());
        }

        Assert.False(target.Ready.IsCompleted);
        Assert.Null(target.ColdStart);

        using var accepted = await ReportAsync(http, target.Id, target.ReportToken!.AuthorizationValue);
        Assert.Equal(HttpStatusCode.NoContent, accepted.StatusCode);
        await target.Ready.WaitAsync(TimeSpan.FromSeconds(30));
        Assert.Equal(1234, target.ColdStart!.AttestationMs);
        Assert.False(neighbour.Ready.IsCompleted);
    }

    private const string Report = """{"phases_ms": {"keygen": 1000, "evidence": 234}, "total_ms": 1300}""";

    private static async Task<HttpResponseMessage> ReportAsync(HttpClient http, string instance, string? authorization, string body = Report)
    {
        using var request = new HttpRequestMessage(HttpMethod.Post, $"v1/instances/{instance}/cold-start")
        {
            Content = new StringContent(body, Encoding.UTF8, "application/json"),
        };
        if (authorization is not null)
        {
            request.Headers.TryAddWithoutValidation("Authorization", authorization);
        }

        return await http.SendAsync(request);
    }
}
