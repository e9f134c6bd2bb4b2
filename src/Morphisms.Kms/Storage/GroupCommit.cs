namespace Morphisms.Kms.Storage;

/// <summary>
/// Group commit: transactions submitted while a commit is running wait for it and are then committed together,
/// so N concurrent writers pay for one durable flush (an fsync) instead of N flushes one after the other. One
/// committer runs at a time; a submitter learns its transaction's outcome only once the batch holding it is
/// durable (or has failed), so acknowledging a write still means it is on disk.
/// </summary>
/// <typeparam name="T">One transaction.</typeparam>
internal sealed class GroupCommit<T> : IDisposable
{
    private readonly Func<IReadOnlyList<T>, IReadOnlyList<Exception?>> _commit;
    private readonly int _maxBatch;
    private readonly string _name;
    private readonly object _gate = new();
    private readonly List<(T Item, TaskCompletionSource Done)> _queue = [];
    private Thread? _committer;
    private bool _disposed;

    /// <param name="commit">
    /// Commits a batch as one durable unit where it can and returns one outcome per transaction, in order: null when
    /// it is durable, else why it failed. One transaction's failure must not undo the others (the SQLite store runs
    /// each in a savepoint and retries the rest alone if the batch as a whole cannot commit). Called on one thread at
    /// a time; an exception it throws fails the whole batch.
    /// </param>
    /// <param name="maxBatch">The most transactions committed together, bounding how long one commit takes.</param>
    /// <param name="name">The committer thread's name (for diagnostics).</param>
    public GroupCommit(Func<IReadOnlyList<T>, IReadOnlyList<Exception?>> commit, int maxBatch = 256, string name = "group commit")
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(maxBatch, 1);
        _commit = commit;
        _maxBatch = maxBatch;
        _name = name;
    }

    /// <summary>Batches committed so far (for tests and diagnostics).</summary>
    public long Batches { get; private set; }

    /// <summary>Transactions committed or failed so far.</summary>
    public long Transactions { get; private set; }

    /// <summary>Told each batch's wall time and size once it is durable or failed, on the committer thread (metrics).</summary>
    public Action<TimeSpan, int>? Observer { get; set; }

    /// <summary>Queues <paramref name="item"/>; completes once it is durable, or faults with why it is not.</summary>
    /// <exception cref="ObjectDisposedException">The store is closing.</exception>
    public Task SubmitAsync(T item)
    {
        // Continuations run elsewhere: the committer must not execute its callers' code before taking the next batch.
        var done = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        lock (_gate)
        {
            ObjectDisposedException.ThrowIf(_disposed, this);
            _queue.Add((item, done));

            // The committer blocks in the database and in fsync for as long as writes keep coming, so it has a thread
            // of its own, started by the first write: on the thread pool it held a worker that requests needed, and a
            // pool with all workers blocked waits up to a second before it adds one.
            if (_committer is null)
            {
                _committer = new Thread(Run) { IsBackground = true, Name = _name };
                _committer.Start();
            }
            else
            {
                Monitor.Pulse(_gate);
            }
        }

        return done.Task;
    }

    /// <summary>Commits what is queued, then stops the committer; afterwards no new transaction is accepted.</summary>
    public void Dispose()
    {
        Thread? committer;
        lock (_gate)
        {
            if (_disposed)
            {
                return;
            }

            _disposed = true;
            committer = _committer;
            Monitor.Pulse(_gate);
        }

        committer?.Join();
    }

    private void Run()
    {
        while (true)
        {
            List<(T Item, TaskCompletionSource Done)> batch;
            lock (_gate)
            {
                while (_queue.Count == 0)
                {
                    if (_disposed)
                    {
                        return;
                    }

                    Monitor.Wait(_gate);
                }

                var take = Math.Min(_queue.Count, _maxBatch);
                batch = _queue.GetRange(0, take);
                _queue.RemoveRange(0, take);
            }

            IReadOnlyList<Exception?> outcomes;
            var started = System.Diagnostics.Stopwatch.GetTimestamp();
            try
            {
                outcomes = _commit([.. batch.Select(b => b.Item)]);
                if (outcomes.Count != batch.Count)
                {
                    throw new InvalidOperationException($"group commit: {outcomes.Count} outcomes for a batch of {batch.Count}");
                }
            }
            catch (Exception e)
            {
                outcomes = [.. batch.Select(_ => e)];
            }

            Batches++;
            Transactions += batch.Count;
            Observer?.Invoke(System.Diagnostics.Stopwatch.GetElapsedTime(started), batch.Count);
            for (var i = 0; i < batch.Count; i++)
            {
                if (outcomes[i] is { } failure)
                {
                    batch[i].Done.TrySetException(failure);
                }
                else
                {
                    batch[i].Done.TrySetResult();
                }
            }
        }
    }
}
