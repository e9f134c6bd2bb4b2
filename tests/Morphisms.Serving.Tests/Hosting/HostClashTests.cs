using System.Net;
using System.Text;
using Morphisms.Serving.Hosting;
using Morphisms.Serving.Spec;

namespace Morphisms.Serving.Tests.Hosting;

/// <summary>
/// Tag hosts are <c>TAG-FN.DOMAIN</c>, so function <c>api</c>'s tag <c>canary</c> and the function <c>canary-api</c>
/// would answer the same host: whichever claims it second is refused, naming the clash, before anything is made, and the
/// first keeps it.
/// </summary>
public sealed class HostClashTests
{
    private const string Host = "canary-api.fn.morphisms.local";

    [Fact]
    public async Task A_function_named_like_another_functions_tag_host_is_refused()
    {
        using var functions = new TestFunctions();
        var launcher = new FakeLauncher();
        await using var host = await functions.HostAsync(GatewayMode.Http, launcher: launcher);
        var api = await host.DeployAsync(functions.Spec("api", "a", FunctionTee.None) with { Traffic = [new TrafficSpec("latest", 100, "canary")] }, CancellationToken.None);
        var launched = launcher.Attempts;

        var error = await Assert.ThrowsAsync<ServingException>(() => host.DeployAsync(functions.Spec("canary-api", "a", FunctionTee.None), CancellationToken.None));

        Assert.StartsWith($"canary-api: the host {Host} is already function api's", error.Message, StringComparison.Ordinal);
        Assert.Equal(["api"], host.List().Select(f => f.Name));
        Assert.Equal(launched, launcher.Attempts);
        Assert.Equal(api.Revision, host.Routes.Resolve(Host));
    }

    [Fact]
    public async Task A_tag_whose_host_is_another_function_is_refused_on_deploy_and_on_a_traffic_change()
    {
        using var functions = new TestFunctions();
        var launcher = new FakeLauncher();
        await using var host = await functions.HostAsync(GatewayMode.Http, launcher: launcher);
        var canaryApi = await host.DeployAsync(functions.Spec("canary-api", "a", FunctionTee.None), CancellationToken.None);
        var api = await host.DeployAsync(functions.Spec("api", "a", FunctionTee.None), CancellationToken.None);
        var launched = launcher.Attempts;

        var error = await Assert.ThrowsAsync<ServingException>(() => host.DeployAsync(
            functions.Spec("api", "b", FunctionTee.None) with { Traffic = [new TrafficSpec("latest", 100, "canary")] }, CancellationToken.None));
        Assert.StartsWith($"api: the host {Host} is already function canary-api's", error.Message, StringComparison.Ordinal);
        Assert.Equal([api.Revision], host.Revisions("api").Select(r => r.Name)); // no revision made for the refused spec

        using var http = TestFunctions.ControlClient(host);
        using var response = await http.PutAsync("v1/functions/api/traffic", new StringContent(
            $$"""{"traffic": [{"revision": "{{api.Revision}}", "percent": 100, "tag": "canary"}]}""", Encoding.UTF8, "application/json"));
        Assert.Equal(HttpStatusCode.BadRequest, response.StatusCode);
        Assert.Contains($"the host {Host} is already function canary-api", await response.Content.ReadAsStringAsync(), StringComparison.Ordinal);

        Assert.Equal(canaryApi.Revision, host.Routes.Resolve(Host));
        Assert.Null(host.List().Single(f => f.Name == "api").Traffic.Single().Tag);
        Assert.Equal(launched, launcher.Attempts);
    }
}
