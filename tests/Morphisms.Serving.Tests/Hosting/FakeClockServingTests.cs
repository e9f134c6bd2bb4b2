using Microsoft.Extensions.Time.Testing;
using Morphisms.Serving.Hosting;
using Morphisms.Serving.Spec;

namespace Morphisms.Serving.Tests.Hosting;

/// <summary>The host's autoscaler loop, supervisor and activator together, with a fake clock and a fake runtime.</summary>
public sealed class FakeClockServingTests
{
    private static readonly ScaleSpec ScaleToZero = new() { Min = 0, Initial = 0, StableWindow = TimeSpan.FromSeconds(6), ScaleToZeroGracePeriod = TimeSpan.FromSeconds(1) };

    [Fact]
    public async Task ScalesFromZeroOnDemand_AndBackToZeroAfterTheStableWindowAndGrace()
    {
        using var functions = new TestFunctions();
        var time = new FakeTimeProvider(DateTimeOffset.Parse("2025-01-01T00:00:00Z", System.Globalization.CultureInfo.InvariantCulture));
        var launcher = new FakeLauncher();
        await using var host = await functions.HostAsync(GatewayMode.Http, launcher: launcher, time: time);
        var deployed = await host.DeployAsync(functions.Spec("zero", "a", FunctionTee.None, ScaleToZero), CancellationToken.None);
        Assert.Empty(launcher.Launched);
        Assert.Equal(0, host.Supervisor(deployed.Revision)!.Desired);

        var target = await host.Resolver.ResolveAsync("zero.fn.morphisms.local", CancellationToken.None).AsTask().WaitAsync(TimeSpan.FromSeconds(10));
        Assert.NotNull(target);
        Assert.True(target.Held, "the request waited at the activator for the cold start");
        var instance = Assert.Single(launcher.Launched);

        for (var i = 0; i < 4; i++)
        {
            time.Advance(TimeSpan.FromSeconds(1));
        }

        Assert.False(instance.Stopped, "within the stable window the instance stays");
        for (var i = 0; i < 10; i++)
        {
            time.Advance(TimeSpan.FromSeconds(1));
        }

        await Eventually.True(() => instance.Stopped && host.Instances.Ready(deployed.Revision).Count == 0, "scaled back to zero");
        Assert.Equal(0, host.Supervisor(deployed.Revision)!.Desired);
    }

    [Fact]
    public async Task RequestsInFlight_KeepTheInstance()
    {
        using var functions = new TestFunctions();
        var time = new FakeTimeProvider();
        var launcher = new FakeLauncher();
        await using var host = await functions.HostAsync(GatewayMode.Http, launcher: launcher, time: time);
        var deployed = await host.DeployAsync(functions.Spec("busy", "a", FunctionTee.None, ScaleToZero), CancellationToken.None);
        var target = await host.Resolver.ResolveAsync("busy.fn.morphisms.local", CancellationToken.None);
        using (host.Concurrency.Begin(target!.Revision))
        {
            for (var i = 0; i < 30; i++)
            {
                time.Advance(TimeSpan.FromSeconds(1));
            }

            Assert.False(Assert.Single(launcher.Launched).Stopped);
        }

        for (var i = 0; i < 15; i++)
        {
            time.Advance(TimeSpan.FromSeconds(1));
        }

        await Eventually.True(() => launcher.Launched.Single().Stopped, "idle instance drained");
        Assert.Equal(0, host.Supervisor(deployed.Revision)!.Desired);
    }

    [Fact]
    public async Task CrashedInstance_IsReplacedAfterAnExponentialBackoff()
    {
        using var functions = new TestFunctions();
        var time = new FakeTimeProvider();
        var launcher = new FakeLauncher();
        await using var host = await functions.HostAsync(GatewayMode.Http, launcher: launcher, time: time);
        var deployed = await host.DeployAsync(functions.Spec("crashy", "a", FunctionTee.None, new ScaleSpec { Min = 1 }), CancellationToken.None);
        await Eventually.True(() => host.Instances.Ready(deployed.Revision).Count == 1, "first instance ready");

        launcher.Launched.Single().Crash();
        await Eventually.True(() => host.Instances.Ready(deployed.Revision).Count == 0, "crashed instance unpublished");
        await AdvanceUntil(time, () => launcher.Launched.Count == 2, notBefore: TimeSpan.FromMilliseconds(200), "replacement launched after the 200 ms backoff");
        await Eventually.True(() => host.Instances.Ready(deployed.Revision).Count == 1, "replacement ready");

        launcher.Launched.Last().Crash();
        await Eventually.True(() => host.Instances.Ready(deployed.Revision).Count == 0, "second crash unpublished");
        await AdvanceUntil(time, () => launcher.Launched.Count == 3, notBefore: TimeSpan.FromMilliseconds(400), "replaced after the doubled backoff");
        Assert.Equal(2, host.Supervisor(deployed.Revision)!.TotalCrashes);
    }

    [Fact]
    public async Task WarmPool_KeepsAReadyStandbyThatIsPromotedOnDemand()
    {
        using var functions = new TestFunctions();
        var time = new FakeTimeProvider();
        var launcher = new FakeLauncher();
        await using var host = await functions.HostAsync(GatewayMode.Http, launcher: launcher, time: time);
        var deployed = await host.DeployAsync(functions.Spec("warm", "a", FunctionTee.None, ScaleToZero with { WarmPool = 1 }), CancellationToken.None);
        await Eventually.True(() => host.Supervisor(deployed.Revision)!.Counts()[Runtime.InstanceState.Standby] == 1, "standby ready");
        Assert.Empty(host.Instances.Ready(deployed.Revision)); // standby is not routed
        var standby = Assert.Single(launcher.Launched);

        var target = await host.Resolver.ResolveAsync("warm.fn.morphisms.local", CancellationToken.None);
        Assert.Equal(standby.AppEndpoint, target!.Endpoint);
        await Eventually.True(() => launcher.Launched.Count == 2 && host.Supervisor(deployed.Revision)!.Counts()[Runtime.InstanceState.Standby] == 1, "the pool refilled");
    }

    /// <summary>
    /// Moves the fake clock in 10 ms steps until <paramref name="done"/>, which must not hold before
    /// <paramref name="notBefore"/> of fake time has passed. Stepping (rather than one jump) keeps the test right
    /// whenever the supervisor arms its backoff timer: a timer armed after a single jump would be due a whole
    /// backoff later and never fire.
    /// </summary>
    private static async Task AdvanceUntil(FakeTimeProvider time, Func<bool> done, TimeSpan notBefore, string what)
    {
        var step = TimeSpan.FromMilliseconds(10);
        var elapsed = TimeSpan.Zero;
        var deadline = DateTime.UtcNow.AddSeconds(10);
        while (!done())
        {
            Assert.True(DateTime.UtcNow < deadline, $"{what}: not reached in 10 s (fake time advanced {elapsed.TotalMilliseconds} ms)");
            time.Advance(step);
            elapsed += step;
            await Task.Delay(2);
        }

        Assert.True(elapsed >= notBefore, $"{what}: happened after {elapsed.TotalMilliseconds} ms of fake time, before {notBefore.TotalMilliseconds} ms");
    }
}
