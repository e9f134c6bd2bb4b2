using System.Text.Json.Nodes;

namespace Morphisms.Cli.Tests.Serving;

/// <summary>What <c>morph traffic</c> sends for its split and tags.</summary>
public sealed class TrafficCommandTests
{
    private static readonly IReadOnlyDictionary<string, string> JsonType = new Dictionary<string, string> { ["Content-Type"] = "application/json" };

    [Fact]
    public async Task Several_tags_of_one_revision_are_all_sent_the_first_on_its_share_the_others_at_zero_percent()
    {
        using var token = new ControlTokenFile();
        await using var server = new FakeHttpServer(_ => new(200, """{"traffic":[]}""", JsonType));

        var outcome = await MorphRunner.RunAsync("traffic", "fn", "fn-00001=100", "--tag", "fn-00001=a", "--tag", "fn-00001=b", "--tag", "fn-00002=c", "--tag", "fn-00002=d",
            "--control", server.Address.ToString(), "--control-token-file", token.Path);

        Assert.True(outcome.ExitCode == ExitCodes.Ok, outcome.Stderr);
        var sent = JsonNode.Parse(Assert.Single(server.Requests).Body)!["traffic"]!.AsArray()
            .Select(t => (t!["revision"]!.GetValue<string>(), t["percent"]!.GetValue<int>(), t["tag"]?.GetValue<string>()));
        Assert.Equal([("fn-00001", 100, "a"), ("fn-00001", 0, "b"), ("fn-00002", 0, "c"), ("fn-00002", 0, "d")], sent);
    }
}
