using System.Net.Http.Json;
using System.Text.Json.Nodes;
using Morphisms.Serving.Hosting;
using Morphisms.Serving.Spec;

namespace Morphisms.Serving.Tests.Hosting;

/// <summary>
/// A deploy of new code for a function whose owners gate its updates: the new revision cannot log in until they approve,
/// so the deploy neither waits for it (that would wait for people, then give up at the progress deadline) nor routes to
/// it; it answers at once that traffic stays, and how to move it once the update is approved.
/// </summary>
public sealed class RolloutApprovalTests(ServingKms kms) : IClassFixture<ServingKms>
{
    private const string Function = "approvedfn";

    [Fact]
    public async Task New_code_awaiting_the_owners_approval_keeps_the_route_and_the_deploy_says_so_at_once()
    {
        using var functions = new TestFunctions();
        await kms.PutBundleAsync(Function);
        var launcher = new FakeLauncher(readyAtOnce: false);
        await using var host = await functions.HostAsync(GatewayMode.Confidential, kms.Connection, kms.SimDir, launcher: launcher);
        var first = await host.DeployAsync(functions.Spec(Function, "a"), CancellationToken.None);
        Assert.Equal("routed at once (the function's first route)", first.Rollout);
        using (var owners = await kms.Root.PutAsync($"v1/morphisms/functions/{Function}", JsonContent.Create(new JsonObject
        {
            ["owners"] = new JsonArray("alice", "bob"),
            ["approvals_required"] = 2,
        })))
        {
            owners.EnsureSuccessStatusCode();
        }

        var second = await host.DeployAsync(functions.Spec(Function, "b"), CancellationToken.None).WaitAsync(TimeSpan.FromSeconds(30));

        Assert.Contains("proposed update", second.Kms, StringComparison.Ordinal);
        Assert.Equal($"kept on {first.Revision} 100 %: {second.Revision} cannot log in until the function's owners approve the update; "
            + $"once they have, 'morph traffic {Function} {second.Revision}=100' moves traffic to it when it is ready", second.Rollout);
        Assert.Equal([(first.Revision, 100)], host.List().Single(f => f.Name == Function).Traffic.Select(t => (t.Revision, t.Percent)));
        Assert.Null(host.Supervisor(second.Revision)); // not started: its instances would only be refused at login
        Assert.DoesNotContain(launcher.Launched, i => i.Id.StartsWith(second.Revision + "-", StringComparison.Ordinal));
    }
}
