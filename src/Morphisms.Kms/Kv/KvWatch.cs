using Morphisms.Kms.Http;

namespace Morphisms.Kms.Kv;

/// <summary>
/// Long-poll reads of KV v2 (<c>GET MOUNT/data/PATH?wait_version_gt=N&amp;wait=30s</c>): a reader parks until a write
/// to its key commits or its wait ends. One instance serves every KV mount of an unsealed KMS, so the limit on
/// parked readers is KMS-wide; sealing wakes them all, so a parked request never holds the seal up.
/// </summary>
internal sealed class KvWatch(int maxWaiters, TimeProvider time) : IDisposable
{
    /// <summary>The longest <c>wait</c> a reader may ask for.</summary>
    public static readonly TimeSpan MaxWait = TimeSpan.FromMinutes(5);

    /// <summary>The wait when <c>wait_version_gt</c> is given without <c>wait</c>.</summary>
    public static readonly TimeSpan DefaultWait = TimeSpan.FromSeconds(30);

    // Keys with parked readers only (an entry goes with its last reader), so the table is bounded by the limit.
    private readonly Dictionary<string, Slot> _slots = new(StringComparer.Ordinal);
    private readonly Lock _lock = new();
    private readonly CancellationTokenSource _closing = new();
    private int _waiters;

    /// <summary>Readers parked right now.</summary>
    public int Waiters => Volatile.Read(ref _waiters);

    /// <summary>
    /// Runs <paramref name="read"/> until <paramref name="version"/> of its result exceeds <paramref name="after"/>,
    /// or falls below the first read's (the key's metadata was deleted: its numbering starts again, so waiting for
    /// more would wait out the whole wait, and then answer what is there anyway), re-reading after each write to
    /// <paramref name="key"/>; at the end of <paramref name="wait"/> (or on seal) returns the last read as it is.
    /// </summary>
    /// <exception cref="KmsException">429 when the KMS-wide limit of parked readers is reached.</exception>
    public async Task<T> WaitAsync<T>(string key, long after, TimeSpan wait, Func<Task<T>> read, Func<T, long> version, CancellationToken ct)
    {
        if (Interlocked.Increment(ref _waiters) > maxWaiters)
        {
            Interlocked.Decrement(ref _waiters);
            throw new KmsException(429, $"too many long-poll reads are waiting (limit {maxWaiters}): retry later or read without wait_version_gt");
        }

        Slot slot;
        lock (_lock)
        {
            if (!_slots.TryGetValue(key, out slot!))
            {
                _slots[key] = slot = new Slot();
            }

            slot.Readers++;
        }

        try
        {
            using var linked = CancellationTokenSource.CreateLinkedTokenSource(ct, _closing.Token);
            var deadline = time.GetUtcNow() + wait;
            long? first = null;
            while (true)
            {
                // Take the signal before reading: a write that commits after the read completes this very signal.
                Task signal;
                lock (_lock)
                {
                    signal = slot.Signal.Task;
                }

                var result = await read().ConfigureAwait(false);
                var current = version(result);
                first ??= current;
                var left = deadline - time.GetUtcNow();
                if (current > after || current < first || left <= TimeSpan.Zero || linked.IsCancellationRequested)
                {
                    return result;
                }

                try
                {
                    await signal.WaitAsync(left, time, linked.Token).ConfigureAwait(false);
                }
                catch (TimeoutException)
                {
                    return await read().ConfigureAwait(false);
                }
                catch (OperationCanceledException) when (_closing.IsCancellationRequested && !ct.IsCancellationRequested)
                {
                    // Sealing: answer with what is there now, while this request still holds its lease on the keys.
                    return await read().ConfigureAwait(false);
                }
            }
        }
        finally
        {
            lock (_lock)
            {
                if (--slot.Readers == 0)
                {
                    _slots.Remove(key);
                }
            }

            Interlocked.Decrement(ref _waiters);
        }
    }

    /// <summary>Wakes the readers of <paramref name="key"/> (after a committed write).</summary>
    public void Notify(string key)
    {
        lock (_lock)
        {
            if (_slots.TryGetValue(key, out var slot))
            {
                slot.Signal.TrySetResult();
                slot.Signal = new(TaskCreationOptions.RunContinuationsAsynchronously);
            }
        }
    }

    /// <summary>Wakes the readers of every key that starts with <paramref name="prefix"/> (a mount being unmounted).</summary>
    public void NotifyAll(string prefix)
    {
        lock (_lock)
        {
            foreach (var (key, slot) in _slots)
            {
                if (key.StartsWith(prefix, StringComparison.Ordinal))
                {
                    slot.Signal.TrySetResult();
                    slot.Signal = new(TaskCreationOptions.RunContinuationsAsynchronously);
                }
            }
        }
    }

    /// <summary>Wakes every reader for good (the KMS is sealing).</summary>
    public void Close() => _closing.Cancel();

    /// <inheritdoc />
    public void Dispose() => _closing.Dispose();

    private sealed class Slot
    {
        public int Readers;
        public TaskCompletionSource Signal = new(TaskCreationOptions.RunContinuationsAsynchronously);
    }
}
