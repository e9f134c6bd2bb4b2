using System.Collections.Concurrent;

namespace Morphisms.Attestation.Verify.Dcap;

/// <summary>
/// A thread-safe memo table with a hard size limit. When full it is emptied rather than kept in
/// LRU order: entries are cheap to recompute, and the working set of a verifier (a few platforms,
/// one collateral set per platform) is far below the limit, so this only matters under abuse.
/// </summary>
internal sealed class BoundedCache<TKey, TValue>
    where TKey : notnull
{
    private readonly ConcurrentDictionary<TKey, TValue> _entries;
    private readonly int _capacity;

    public BoundedCache(int capacity, IEqualityComparer<TKey>? comparer = null)
    {
        _capacity = capacity;
        _entries = new ConcurrentDictionary<TKey, TValue>(comparer);
    }

    public int Count => _entries.Count;

    public bool TryGet(TKey key, out TValue value) => _entries.TryGetValue(key, out value!);

    public TValue GetOrAdd(TKey key, Func<TKey, TValue> factory)
    {
        if (_entries.TryGetValue(key, out var existing))
        {
            return existing;
        }

        var value = factory(key);
        Set(key, value);
        return value;
    }

    public void Set(TKey key, TValue value)
    {
        if (_entries.Count >= _capacity)
        {
            _entries.Clear();
        }

        _entries[key] = value;
    }

    public void Clear() => _entries.Clear();
}
