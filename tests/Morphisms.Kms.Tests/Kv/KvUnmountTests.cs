using Morphisms.Kms.Kv;
using Morphisms.Kms.Storage;

namespace Morphisms.Kms.Tests.Kv;

/// <summary>
/// Unmounting (<c>DELETE sys/mounts/PATH</c>) while requests on the mount are under way: nothing they write may outlive
/// the mount under its storage prefix, where no mount would reference it, no unmount delete it, and every snapshot carry it.
/// </summary>
public sealed class KvUnmountTests
{
    [Fact]
    public async Task A_write_that_reaches_its_transaction_after_the_unmount_fails_with_a_503_naming_the_mount_and_leaves_nothing()
    {
        await using var kms = await TestKms.StartUnsealedAsync();
        var c = kms.Client;
        (await c.PostAsync("sys/mounts/team", new { type = "kv-v2" })).Expect(204);
        (await c.PostAsync("team/data/x", new { data = new { v = "1" } })).Expect(200);
        var prefix = "logical/" + (await c.GetAsync("sys/mounts/team")).Expect(200).Data["uuid"]!.GetValue<string>() + "/";
        Assert.Contains(kms.Storage!.Snapshot().Keys, k => k.StartsWith(prefix, StringComparison.Ordinal));

        var reached = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var release = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        Backend(kms, "team/").BeforeWriteTransactionForTests = async () =>
        {
            reached.TrySetResult();
            await release.Task;
        };

        // The write has read the metadata and built its transaction; the unmount lists and deletes meanwhile.
        var write = c.PostAsync("team/data/x", new { data = new { v = "2" } });
        try
        {
            await reached.Task.WaitAsync(TimeSpan.FromSeconds(10));
            (await c.DeleteAsync("sys/mounts/team")).Expect(204);
        }
        finally
        {
            release.TrySetResult();
        }

        var refused = await write.WaitAsync(TimeSpan.FromSeconds(10));
        Assert.DoesNotContain(kms.Storage.Snapshot().Keys, k => k.StartsWith(prefix, StringComparison.Ordinal));
        Assert.Contains("'team/' is being disabled", refused.Expect(503).Errors[0], StringComparison.Ordinal);
        (await c.GetAsync("team/data/x")).Expect(404);
    }

    [Fact]
    public async Task The_unmount_waits_for_a_transaction_under_way_and_then_deletes_what_it_wrote()
    {
        var storage = new HoldingStorage();
        await using var kms = await TestKms.StartUnsealedAsync(physical: storage);
        var c = kms.Client;
        (await c.PostAsync("sys/mounts/team", new { type = "kv-v2" })).Expect(204);
        var prefix = "logical/" + (await c.GetAsync("sys/mounts/team")).Expect(200).Data["uuid"]!.GetValue<string>() + "/";

        storage.HoldPrefix = prefix;
        var write = c.PostAsync("team/data/x", new { data = new { v = "1" } });
        Task<VaultResult> unmount;
        try
        {
            await storage.Reached.Task.WaitAsync(TimeSpan.FromSeconds(10));
            unmount = c.DeleteAsync("sys/mounts/team");

            // A request arriving meanwhile is refused, not served by a mount about to go. Until the unmount request has
            // reached the server and closed the mount, a read still finds no version yet (404): polled, not slept on, as
            // a loaded machine may deliver the unmount late; a mount that never refuses fails at the deadline.
            var deadline = DateTime.UtcNow.AddSeconds(10);
            VaultResult read;
            while ((read = await c.GetAsync("team/data/x")).Status != 503)
            {
                read.Expect(404);
                Assert.False(unmount.IsCompleted, $"the unmount ended ({unmount.Status}) before a read was refused");
                Assert.True(DateTime.UtcNow < deadline, "a read during the unmount was never refused with a 503");
                await Task.Delay(10);
            }

            Assert.Contains("'team/' is being disabled", read.Errors[0], StringComparison.Ordinal);

            // The unmount is under way now: given time to finish, it must still wait for the held transaction.
            await Task.Delay(200);
            Assert.False(unmount.IsCompleted, "the unmount must wait for the transaction under way on the mount");
        }
        finally
        {
            storage.Release.TrySetResult();
        }

        (await write.WaitAsync(TimeSpan.FromSeconds(10))).Expect(200);
        (await unmount.WaitAsync(TimeSpan.FromSeconds(10))).Expect(204);
        Assert.DoesNotContain(storage.Inner.Snapshot().Keys, k => k.StartsWith(prefix, StringComparison.Ordinal));
    }

    [Fact]
    public async Task A_long_poll_read_parked_on_the_mount_ends_at_the_unmount()
    {
        await using var kms = await TestKms.StartUnsealedAsync();
        var c = kms.Client;
        (await c.PostAsync("sys/mounts/team", new { type = "kv-v2" })).Expect(204);
        (await c.PostAsync("team/data/app", new { data = new { v = "1" } })).Expect(200);
        var parked = c.GetAsync("team/data/app?wait_version_gt=1&wait=300s");
        await kms.WaitForKvWaitersAsync(1);

        (await c.DeleteAsync("sys/mounts/team")).Expect(204);
        var ended = (await parked.WaitAsync(TimeSpan.FromSeconds(10))).Expect(503);
        Assert.Contains("'team/' is being disabled", ended.Errors[0], StringComparison.Ordinal);
        Assert.Equal(0, kms.Server.KvWaiters);
    }

    private static KvV2Backend Backend(TestKms kms, string mount)
    {
        var state = kms.Server.Core.Acquire()!;
        try
        {
            return (KvV2Backend)state.Mounts.Resolve(mount)!.Value.Backend;
        }
        finally
        {
            state.Release();
        }
    }

    /// <summary>In-memory storage that holds the first transaction writing under <see cref="HoldPrefix"/> until released.</summary>
    private sealed class HoldingStorage : ForwardingStorage
    {
        private int _held;

        public string? HoldPrefix { get; set; }

        public TaskCompletionSource Reached { get; } = new(TaskCreationOptions.RunContinuationsAsynchronously);

        public TaskCompletionSource Release { get; } = new(TaskCreationOptions.RunContinuationsAsynchronously);

        public override async Task TransactAsync(IReadOnlyList<StorageOperation> operations, CancellationToken cancellationToken = default)
        {
            if (HoldPrefix is { } hold && operations.Any(o => o.Key.StartsWith(hold, StringComparison.Ordinal) && o.Value is not null)
                && Interlocked.Exchange(ref _held, 1) == 0)
            {
                Reached.SetResult();
                await Release.Task;
            }

            await Inner.TransactAsync(operations, cancellationToken);
        }
    }
}
