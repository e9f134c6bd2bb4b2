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

    private static Revision Revision()
    {
        var spec = new FunctionSpec { Name = "refused", Tee = FunctionTee.None, Bundle = "/nonexistent", Command = ["/bin/true"] };
        return new Revision("refused-00001", 1, spec, [], "", DateTimeOffset.UtcNow);
    }
}
