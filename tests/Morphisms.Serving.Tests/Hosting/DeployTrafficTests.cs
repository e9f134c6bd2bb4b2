using System.Net;
using System.Text;
using System.Text.Json.Nodes;
using Morphisms.Serving.Hosting;
using Morphisms.Serving.Spec;

namespace Morphisms.Serving.Tests.Hosting;

/// <summary>
/// A deploy whose traffic block is refused makes no revision and launches nothing: the block is checked before the
/// revision is created (and, with a KMS, registered), not only when it is applied.
/// </summary>
public sealed class DeployTrafficTests
{
    public static TheoryData<string, TrafficSpec[]> BadBlocks => new()
    {
        { "percentages sum to 90", [new TrafficSpec("latest", 90, null)] },
        { "tag 'Not_A_Label' is not a DNS label", [new TrafficSpec("latest", 100, "Not_A_Label")] },
        { "tag 'x' is used twice", [new TrafficSpec("latest", 50, "x"), new TrafficSpec("fn-00001", 50, "x")] },
        { "fn has no revision fn-00007", [new TrafficSpec("latest", 50, null), new TrafficSpec("fn-00007", 50, null)] },
        // A valid DNS label alone, but its host label TAG-fn is 64 characters.
        { $"tag '{new string('t', 61)}' makes the host label '{new string('t', 61)}-fn' 64 characters long, over DNS's 63", [new TrafficSpec("latest", 100, new string('t', 61))] },
    };

    [Theory]
    [MemberData(nameof(BadBlocks))]
    public async Task A_refused_traffic_block_leaves_the_function_as_it_was(string problem, TrafficSpec[] traffic)
    {
        using var functions = new TestFunctions();
        var launcher = new FakeLauncher();
        await using var host = await functions.HostAsync(GatewayMode.Http, launcher: launcher);
        var first = await host.DeployAsync(functions.Spec("fn", "a", FunctionTee.None), CancellationToken.None);
        var launched = launcher.Attempts;

        var error = await Assert.ThrowsAsync<ServingException>(() => host.DeployAsync(
            functions.Spec("fn", "b", FunctionTee.None) with { Traffic = traffic }, CancellationToken.None));

        Assert.Contains(problem, error.Message, StringComparison.Ordinal);
        Assert.Equal([first.Revision], host.Revisions("fn").Select(r => r.Name));
        Assert.Equal(launched, launcher.Attempts);
    }

    [Fact]
    public async Task A_traffic_change_with_a_tag_too_long_for_its_host_label_is_a_400_and_changes_nothing()
    {
        using var functions = new TestFunctions();
        await using var host = await functions.HostAsync(GatewayMode.Http, launcher: new FakeLauncher());
        var first = await host.DeployAsync(functions.Spec("fn", "a", FunctionTee.None), CancellationToken.None);
        var before = host.List().Single().Traffic.Select(t => (t.Revision, t.Percent, t.Tag)).ToList();
        using var http = TestFunctions.ControlClient(host);
        var tag = new string('t', 61);

        using var response = await http.PutAsync("v1/functions/fn/traffic",
            new StringContent($$"""{"traffic": [{"revision": "latest", "percent": 100, "tag": "{{tag}}"}]}""", Encoding.UTF8, "application/json"));

        Assert.Equal(HttpStatusCode.BadRequest, response.StatusCode);
        var error = JsonNode.Parse(await response.Content.ReadAsStringAsync())!["errors"]![0]!.GetValue<string>();
        Assert.Contains($"tag '{tag}' makes the host label '{tag}-fn' 64 characters long, over DNS's 63", error, StringComparison.Ordinal);
        Assert.Equal(before, host.List().Single().Traffic.Select(t => (t.Revision, t.Percent, t.Tag)));
        Assert.Null(host.Routes.Resolve($"{tag}-fn.fn.morphisms.local"));
        Assert.Equal(first.Revision, host.Routes.Resolve("fn.fn.morphisms.local"));
    }

    [Fact]
    public async Task A_revision_may_carry_several_tags_one_per_traffic_entry_and_answers_at_each()
    {
        // What `morph traffic fn fn-00001=100 --tag fn-00001=a --tag fn-00001=b` sends.
        using var functions = new TestFunctions();
        await using var host = await functions.HostAsync(GatewayMode.Http, launcher: new FakeLauncher());
        var first = await host.DeployAsync(functions.Spec("fn", "a", FunctionTee.None), CancellationToken.None);

        await host.SetTrafficAsync("fn", [new TrafficSpec(first.Revision, 100, "a"), new TrafficSpec(first.Revision, 0, "b")], CancellationToken.None);

        Assert.Equal(first.Revision, host.Routes.Resolve("a-fn.fn.morphisms.local"));
        Assert.Equal(first.Revision, host.Routes.Resolve("b-fn.fn.morphisms.local"));
        var revision = Assert.Single(host.Revisions("fn"));
        Assert.Equal(["a", "b"], revision.Tags);
        Assert.Equal(100, revision.Percent);
    }

    [Fact]
    public async Task A_block_may_name_the_revision_the_deploy_creates()
    {
        using var functions = new TestFunctions();
        await using var host = await functions.HostAsync(GatewayMode.Http, launcher: new FakeLauncher());
        var first = await host.DeployAsync(functions.Spec("fn", "a", FunctionTee.None), CancellationToken.None);

        var second = await host.DeployAsync(functions.Spec("fn", "b", FunctionTee.None) with
        {
            Traffic = [new TrafficSpec(first.Revision, 50, null), new TrafficSpec("fn-00002", 50, "next")],
        }, CancellationToken.None);

        Assert.Equal("fn-00002", second.Revision);
        Assert.Equal(["fn-00001", "fn-00002"], host.List().Single().Traffic.Select(t => t.Revision));
    }

    [Fact]
    public async Task A_traffic_change_answers_the_status_it_made_even_when_an_rm_comes_right_after()
    {
        using var functions = new TestFunctions();
        await using var host = await functions.HostAsync(GatewayMode.Http, launcher: new FakeLauncher());
        await host.DeployAsync(functions.Spec("fn", "a", FunctionTee.None), CancellationToken.None);
        // An rm between the change releasing the lock and the answer: the answer used to look the function up again (a 500).
        host.AfterTrafficChangeForTests = function => host.RemoveAsync(function, CancellationToken.None);
        using var http = TestFunctions.ControlClient(host);

        using var response = await http.PutAsync("v1/functions/fn/traffic",
            new StringContent("""{"traffic": [{"revision": "latest", "percent": 100, "tag": "blue"}]}""", Encoding.UTF8, "application/json"));

        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        var status = JsonNode.Parse(await response.Content.ReadAsStringAsync())!;
        Assert.Equal("fn", status["name"]!.GetValue<string>());
        Assert.Equal("blue", Assert.Single(status["traffic"]!.AsArray())!["tag"]!.GetValue<string>());
        Assert.Empty(host.List());
    }
}
