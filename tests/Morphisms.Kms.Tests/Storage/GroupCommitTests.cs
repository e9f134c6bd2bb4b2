using Morphisms.Kms.Storage;

namespace Morphisms.Kms.Tests.Storage;

public sealed class GroupCommitTests
{
    [Fact]
    public async Task Writers_arriving_during_a_commit_share_the_next_one_and_are_acknowledged_only_after_it()
    {
        using var firstCommitRunning = new ManualResetEventSlim();
        using var releaseFirstCommit = new ManualResetEventSlim();
        var batches = new List<string[]>();
        var durable = new HashSet<string>();
        using var commits = new GroupCommit<string>(batch =>
        {
            if (batches.Count == 0)
            {
                firstCommitRunning.Set();
                releaseFirstCommit.Wait(TimeSpan.FromSeconds(30));
            }

            batches.Add([.. batch]);
            lock (durable)
            {
                durable.UnionWith(batch);
            }

            return [.. batch.Select(_ => (Exception?)null)];
        });

        var first = commits.SubmitAsync("first");
        Assert.True(firstCommitRunning.Wait(TimeSpan.FromSeconds(30)));
        var waiting = Enumerable.Range(0, 20).Select(i => commits.SubmitAsync($"w{i}")).ToList();

        // The committer is busy with "first": nobody is acknowledged before their write is durable.
        Assert.False(first.IsCompleted);
        Assert.All(waiting, t => Assert.False(t.IsCompleted));

        releaseFirstCommit.Set();
        await first;
        await Task.WhenAll(waiting).WaitAsync(TimeSpan.FromSeconds(30));

        Assert.Equal([["first"], [.. Enumerable.Range(0, 20).Select(i => $"w{i}")]], batches);
        Assert.Equal(2, commits.Batches);
        Assert.Equal(21, commits.Transactions);
        Assert.Equal(21, durable.Count);
    }

    [Fact]
    public async Task A_failing_transaction_fails_alone_and_its_batch_mates_commit()
    {
        using var hold = new ManualResetEventSlim();
        using var holding = new ManualResetEventSlim();
        using var commits = new GroupCommit<string>(batch =>
        {
            if (batch is ["hold"])
            {
                holding.Set();
                hold.Wait(TimeSpan.FromSeconds(30));
            }

            return [.. batch.Select(item => item == "bad" ? new InvalidOperationException("bad transaction") : (Exception?)null)];
        });

        var held = commits.SubmitAsync("hold");
        Assert.True(holding.Wait(TimeSpan.FromSeconds(30)));
        var good1 = commits.SubmitAsync("good1");
        var bad = commits.SubmitAsync("bad");
        var good2 = commits.SubmitAsync("good2");
        hold.Set();

        await held;
        await good1;
        await good2;
        var e = await Assert.ThrowsAsync<InvalidOperationException>(() => bad);
        Assert.Equal("bad transaction", e.Message);
        Assert.Equal(2, commits.Batches);
    }

    [Fact]
    public async Task A_commit_that_throws_fails_its_batch_and_the_next_batch_still_commits()
    {
        var calls = 0;
        using var commits = new GroupCommit<int>(batch =>
            Interlocked.Increment(ref calls) == 1 ? throw new IOException("disk full") : [.. batch.Select(_ => (Exception?)null)]);

        var e = await Assert.ThrowsAsync<IOException>(() => commits.SubmitAsync(1));
        Assert.Equal("disk full", e.Message);
        await commits.SubmitAsync(2);
        Assert.Equal(2, commits.Batches);
    }

    [Fact]
    public async Task Every_batch_commits_on_one_dedicated_thread_outside_the_pool()
    {
        var threads = new System.Collections.Concurrent.ConcurrentBag<(int Id, bool Pooled, string? Name)>();
        using var commits = new GroupCommit<int>(
            batch =>
            {
                threads.Add((Environment.CurrentManagedThreadId, Thread.CurrentThread.IsThreadPoolThread, Thread.CurrentThread.Name));
                return [.. batch.Select(_ => (Exception?)null)];
            },
            name: "test commit");

        for (var i = 0; i < 5; i++)
        {
            // One at a time, each after the committer went idle: it must wake, not be replaced.
            await commits.SubmitAsync(i);
            await Task.Delay(10);
        }

        Assert.Equal(5, commits.Batches);
        var thread = Assert.Single(threads.Distinct());
        Assert.False(thread.Pooled);
        Assert.Equal("test commit", thread.Name);
    }

    [Fact]
    public async Task Batches_are_capped_and_keep_submission_order()
    {
        using var hold = new ManualResetEventSlim();
        using var holding = new ManualResetEventSlim();
        var seen = new List<int[]>();
        using var commits = new GroupCommit<int>(batch =>
        {
            if (batch is [-1])
            {
                holding.Set();
                hold.Wait(TimeSpan.FromSeconds(30));
            }

            seen.Add([.. batch]);
            return [.. batch.Select(_ => (Exception?)null)];
        }, maxBatch: 4);

        var held = commits.SubmitAsync(-1);
        Assert.True(holding.Wait(TimeSpan.FromSeconds(30)));
        var rest = Enumerable.Range(0, 10).Select(commits.SubmitAsync).ToList();
        hold.Set();
        await held;
        await Task.WhenAll(rest);

        Assert.Equal([[-1], [0, 1, 2, 3], [4, 5, 6, 7], [8, 9]], seen);
    }

    [Fact]
    public async Task Dispose_waits_for_the_running_batch_and_then_refuses_new_transactions()
    {
        using var release = new ManualResetEventSlim();
        using var running = new ManualResetEventSlim();
        var commits = new GroupCommit<int>(batch =>
        {
            running.Set();
            release.Wait(TimeSpan.FromSeconds(30));
            return [.. batch.Select(_ => (Exception?)null)];
        });

        var pending = commits.SubmitAsync(1);
        Assert.True(running.Wait(TimeSpan.FromSeconds(30)));
        var disposing = Task.Run(commits.Dispose);
        Assert.NotSame(disposing, await Task.WhenAny(disposing, Task.Delay(50)));
        release.Set();
        await disposing.WaitAsync(TimeSpan.FromSeconds(30));

        Assert.True(pending.IsCompletedSuccessfully);
        Assert.Throws<ObjectDisposedException>(() => { _ = commits.SubmitAsync(2); });
    }
}
