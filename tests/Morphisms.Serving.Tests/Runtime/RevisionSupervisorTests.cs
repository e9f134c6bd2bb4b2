using Microsoft.Extensions.Time.Testing;
using Morphisms.Serving.Activation;
using Morphisms.Serving.Revisions;
using Morphisms.Serving.Runtime;
using Morphisms.Serving.Spec;

namespace Morphisms.Serving.Tests;

/// <summary>
/// A launch the runtime refuses (fork EAGAIN, a full disk, a directory it may not create) is retried after the
/// restart backoff, as a crash is: the autoscaler asks again only when its count changes, so nothing else would.
/// </summary>
public sealed class RevisionSupervisorTests
{
    private static readonly SupervisorOptions Options = new() { RestartBackoff = TimeSpan.FromMilliseconds(500) };

    public static TheoryData<Exception> Refusals() => new()
    {
        new IOException("No space left on device"),
        new System.ComponentModel.Win32Exception(11, "Resource temporarily unavailable"),
        new UnauthorizedAccessException("Access to the path is denied"),
    };

    [Theory]
    [MemberData(nameof(Refusals))]
    public async Task A_refused_launch_is_retried_after_the_restart_backoff(Exception refusal)
    {
        var time = new FakeTimeProvider();
        var launcher = new FakeLauncher();
        launcher.Refusals.Enqueue(refusal);
        var instances = new RevisionInstances();
        await using var supervisor = new RevisionSupervisor(Revision(), launcher, instances, Options, time, _ => { });

        supervisor.ScaleTo(1);

        Assert.Equal(1, launcher.Attempts);
        Assert.Empty(launcher.Launched);
        Assert.Contains(supervisor.History.Snapshot(), l => l.Text.Contains("could not start", StringComparison.Ordinal));

        time.Advance(TimeSpan.FromMilliseconds(499));
        Assert.Equal(1, launcher.Attempts);

        time.Advance(TimeSpan.FromMilliseconds(1));
        Assert.Equal(2, launcher.Attempts);
        Assert.Single(launcher.Launched);
        await Eventually.True(() => supervisor.ReadyCount == 1 && instances.Ready(supervisor.Revision.Name).Count == 1, "the retried instance is ready and published");
    }

    [Fact]
    public async Task Refusals_in_a_row_back_off_once_per_attempt_not_once_per_missing_instance()
    {
        var time = new FakeTimeProvider();
        var launcher = new FakeLauncher();
        launcher.Refusals.Enqueue(new IOException("first"));
        launcher.Refusals.Enqueue(new IOException("second"));
        var instances = new RevisionInstances();
        await using var supervisor = new RevisionSupervisor(Revision(), launcher, instances, Options, time, _ => { });

        supervisor.ScaleTo(3);
        Assert.Equal(1, launcher.Attempts);

        time.Advance(TimeSpan.FromMilliseconds(500));
        Assert.Equal(2, launcher.Attempts);

        // Doubled after the second refusal.
        time.Advance(TimeSpan.FromMilliseconds(999));
        Assert.Equal(2, launcher.Attempts);
        time.Advance(TimeSpan.FromMilliseconds(1));
        Assert.Equal(3, launcher.Launched.Count);
        await Eventually.True(() => supervisor.ReadyCount == 3, "all three ready");
    }

    /// <summary>
    /// A plain app (tee: none) may exit at SIGTERM at once: while its endpoint was still published, requests went on
    /// reaching it (new ones, and ones on the gateway's pooled keep-alive connections) and failed with 502.
    /// </summary>
    [Fact]
    public async Task A_scaled_down_instance_is_unpublished_before_it_is_signalled()
    {
        var time = new FakeTimeProvider();
        var launcher = new FakeLauncher();
        var instances = new RevisionInstances();
        await using var supervisor = new RevisionSupervisor(Revision(), launcher, instances, Options with { PublishTlsEndpoints = false }, time, _ => { });
        supervisor.ScaleTo(2);
        await Eventually.True(() => instances.Ready(supervisor.Revision.Name).Count == 2, "both instances published");
        var publishedAtStop = RecordPublishedAtStop(launcher, instances, supervisor.Revision.Name);

        supervisor.ScaleTo(1);

        var (stopped, published) = Assert.Single(publishedAtStop);
        Assert.DoesNotContain(stopped, published);
        Assert.Single(published);
    }

    [Fact]
    public async Task Instances_drained_as_the_revision_goes_are_unpublished_before_they_are_signalled()
    {
        var time = new FakeTimeProvider();
        var launcher = new FakeLauncher();
        var instances = new RevisionInstances();
        var supervisor = new RevisionSupervisor(Revision(), launcher, instances, Options with { PublishTlsEndpoints = false }, time, _ => { });
        supervisor.ScaleTo(2);
        await Eventually.True(() => instances.Ready(supervisor.Revision.Name).Count == 2, "both instances published");
        var publishedAtStop = RecordPublishedAtStop(launcher, instances, supervisor.Revision.Name);

        await supervisor.DisposeAsync();

        Assert.Equal(2, publishedAtStop.Count);
        Assert.All(publishedAtStop, stop => Assert.DoesNotContain(stop.Stopped, stop.Published));
    }

    // For each instance stopped: its endpoint, and the endpoints published when it was signalled.
    private static System.Collections.Concurrent.ConcurrentQueue<(System.Net.IPEndPoint Stopped, IReadOnlyList<System.Net.IPEndPoint> Published)> RecordPublishedAtStop(
        FakeLauncher launcher, RevisionInstances instances, string revision)
    {
        var stops = new System.Collections.Concurrent.ConcurrentQueue<(System.Net.IPEndPoint, IReadOnlyList<System.Net.IPEndPoint>)>();
        foreach (var instance in launcher.Launched)
        {
            instance.OnStop = () => stops.Enqueue((instance.AppEndpoint, instances.Ready(revision)));
        }

        return stops;
    }

    [Fact]
    public async Task FirstReady_completes_true_when_an_instance_is_first_published_ready()
    {
        var launcher = new FakeLauncher(readyAtOnce: false);
        var instances = new RevisionInstances();
        await using var supervisor = new RevisionSupervisor(Revision(), launcher, instances, Options, new FakeTimeProvider(), _ => { });
        supervisor.ScaleTo(1);
        Assert.False(supervisor.FirstReady.IsCompleted);

        Assert.Single(launcher.Launched).MarkReady();

        Assert.True(await supervisor.FirstReady.WaitAsync(TimeSpan.FromSeconds(10)));
        Assert.Single(instances.Ready(supervisor.Revision.Name)); // published before the signal: a route moved on it finds the instance
    }

    [Fact]
    public async Task FirstReady_completes_false_when_the_supervisor_stops_before_any_instance_was_ready()
    {
        var launcher = new FakeLauncher(readyAtOnce: false);
        var supervisor = new RevisionSupervisor(Revision(), launcher, new RevisionInstances(), Options, new FakeTimeProvider(), _ => { });
        supervisor.ScaleTo(1);

        await supervisor.DisposeAsync();

        Assert.False(await supervisor.FirstReady.WaitAsync(TimeSpan.FromSeconds(10)));
    }

    private static Revision Revision()
    {
        var spec = new FunctionSpec { Name = "refused", Tee = FunctionTee.None, Bundle = "/nonexistent", Command = ["/bin/true"] };
        return new Revision("refused-00001", 1, spec, [], "", DateTimeOffset.UtcNow);
    }
}
