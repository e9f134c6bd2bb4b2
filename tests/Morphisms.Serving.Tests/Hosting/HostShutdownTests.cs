using Morphisms.Serving.Hosting;
using Morphisms.Serving.Revisions;
using Morphisms.Serving.Runtime;
using Morphisms.Serving.Spec;

namespace Morphisms.Serving.Tests.Hosting;

/// <summary>
/// Stopping the host while a deploy is under way: the host used to stop the revisions it had at that moment, so the
/// deploy then started instances nobody stopped (plain processes outlive the host), and its lock release threw on the
/// disposed lock.
/// </summary>
public sealed class HostShutdownTests
{
    [Fact]
    public async Task A_deploy_under_way_while_the_host_stops_leaves_no_instance_running_and_a_later_one_is_refused()
    {
        using var functions = new TestFunctions();
        var launcher = new BlockingLauncher();
        var host = await functions.HostAsync(GatewayMode.Http, launcher: launcher);
        var deploy = Task.Run(() => host.DeployAsync(functions.Spec("fn", "a", FunctionTee.None), CancellationToken.None));
        Assert.True(launcher.Entered.Wait(TimeSpan.FromSeconds(10)), "the deploy reached its first launch");

        var disposing = host.DisposeAsync().AsTask();
        await Task.WhenAny(disposing, Task.Delay(500));
        launcher.Go.Set();

        await deploy.WaitAsync(TimeSpan.FromSeconds(10));
        await disposing.WaitAsync(TimeSpan.FromSeconds(10));
        Assert.NotEmpty(launcher.Inner.Launched);
        Assert.Empty(launcher.Inner.Alive);

        var late = await Assert.ThrowsAsync<ServingException>(() => host.DeployAsync(functions.Spec("late", "a", FunctionTee.None), CancellationToken.None));
        Assert.True(late.Unavailable);
        Assert.Contains("stopping", late.Message, StringComparison.Ordinal);
        Assert.DoesNotContain(launcher.Inner.Launched, i => i.Id.StartsWith("late", StringComparison.Ordinal));
    }

    /// <summary>A fake runtime whose first launch waits until the test lets it go.</summary>
    private sealed class BlockingLauncher : IInstanceLauncher
    {
        public FakeLauncher Inner { get; } = new();

        public ManualResetEventSlim Entered { get; } = new();

        public ManualResetEventSlim Go { get; } = new();

        public IInstanceProcess Launch(Revision revision, string instanceId)
        {
            Entered.Set();
            Go.Wait(TimeSpan.FromSeconds(30));
            return Inner.Launch(revision, instanceId);
        }
    }
}
