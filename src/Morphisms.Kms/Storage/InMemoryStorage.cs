namespace Morphisms.Kms.Storage;

/// <summary>Process-local storage for tests and throw-away dev servers (<c>--storage inmem</c>); nothing is durable.</summary>
public sealed class InMemoryStorage : IPhysicalStorage
{
    private readonly SortedDictionary<string, byte[]> _entries = new(StringComparer.Ordinal);
    private readonly Lock _lock = new();

    /// <summary>The number of stored keys (for tests).</summary>
    public int Count
    {
        get
        {
            lock (_lock)
            {
                return _entries.Count;
            }
        }
    }

    /// <summary>A snapshot of every key and value (for tests that look at what reaches the disk).</summary>
    public IReadOnlyDictionary<string, byte[]> Snapshot()
    {
        lock (_lock)
        {
            return _entries.ToDictionary(e => e.Key, e => e.Value.ToArray(), StringComparer.Ordinal);
        }
    }

    /// <inheritdoc />
    public Task<IReadOnlyList<KeyValuePair<string, byte[]>>> ReadAllAsync(CancellationToken cancellationToken = default)
    {
        lock (_lock)
        {
            return Task.FromResult<IReadOnlyList<KeyValuePair<string, byte[]>>>([.. _entries.Select(e => new KeyValuePair<string, byte[]>(e.Key, e.Value.ToArray()))]);
        }
    }

    /// <inheritdoc />
    public Task<byte[]?> GetAsync(string key, CancellationToken cancellationToken = default)
    {
        lock (_lock)
        {
            return Task.FromResult(_entries.TryGetValue(key, out var v) ? v.ToArray() : null);
        }
    }

    /// <inheritdoc />
    public Task PutAsync(string key, ReadOnlyMemory<byte> value, CancellationToken cancellationToken = default) =>
        TransactAsync([StorageOperation.Put(key, value)], cancellationToken);

    /// <inheritdoc />
    public Task DeleteAsync(string key, CancellationToken cancellationToken = default) =>
        TransactAsync([StorageOperation.Delete(key)], cancellationToken);

    /// <inheritdoc />
    public Task<IReadOnlyList<string>> ListAsync(string prefix, CancellationToken cancellationToken = default)
    {
        lock (_lock)
        {
            return Task.FromResult(StorageKeys.ImmediateChildren(prefix, _entries.Keys.Where(k => k.StartsWith(prefix, StringComparison.Ordinal))));
        }
    }

    /// <inheritdoc />
    public Task TransactAsync(IReadOnlyList<StorageOperation> operations, CancellationToken cancellationToken = default)
    {
        lock (_lock)
        {
            foreach (var op in operations)
            {
                if (op.Value is { } value)
                {
                    _entries[op.Key] = value.ToArray();
                }
                else
                {
                    _entries.Remove(op.Key);
                }
            }
        }

        return Task.CompletedTask;
    }

    /// <inheritdoc />
    public ValueTask DisposeAsync() => ValueTask.CompletedTask;
}
