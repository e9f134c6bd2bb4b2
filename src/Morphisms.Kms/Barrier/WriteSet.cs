namespace Morphisms.Kms.Barrier;

/// <summary>
/// Writes gathered from several features, each through its own storage view (the token store's, a mount's, the
/// core's), and committed as one transaction: either all of them are durable or none is. Attest-login uses it so
/// that a token, its certificate and the retirement index naming both appear together, in one commit.
/// </summary>
internal sealed class WriteSet
{
    private readonly Lock _lock = new();
    private readonly List<(string Key, byte[]? Value)> _operations = [];
    private readonly HashSet<PrefixedStorage> _views = [];
    private ISecureStorage? _store;
    private bool _committed;

    /// <summary>How many writes are gathered.</summary>
    public int Count
    {
        get
        {
            lock (_lock)
            {
                return _operations.Count;
            }
        }
    }

    /// <summary>Adds a put (or, with a null <paramref name="value"/>, a delete) of <paramref name="key"/> as seen through <paramref name="view"/>.</summary>
    /// <exception cref="InvalidOperationException">The set was committed, or <paramref name="view"/> sits on another store than earlier writes.</exception>
    public void Add(ISecureStorage view, string key, byte[]? value)
    {
        lock (_lock)
        {
            if (_committed)
            {
                throw new InvalidOperationException("write set already committed");
            }

            // A mount's view only prefixes keys, so its write is the same write on the store beneath, under the full
            // key; the view is remembered so that the commit is refused once its mount is being unmounted.
            while (view is PrefixedStorage prefixed)
            {
                key = prefixed.Prefix + key;
                view = prefixed.Inner;
                _views.Add(prefixed);
            }

            if (_store is not null && !ReferenceEquals(_store, view))
            {
                throw new InvalidOperationException("one write set cannot span two stores");
            }

            _store = view;
            _operations.Add((key, value));
        }
    }

    /// <summary>
    /// Commits every gathered write in one transaction; nothing to do when there are none. The transaction runs as an
    /// operation of every mount view a write came through (<see cref="PrefixedStorage.Enter"/>), so an unmount waits
    /// for it, or it is refused (503) when the unmount began first.
    /// </summary>
    public async Task CommitAsync(CancellationToken ct)
    {
        ISecureStorage? store;
        List<(string Key, byte[]? Value)> operations;
        PrefixedStorage[] views;
        lock (_lock)
        {
            if (_committed)
            {
                throw new InvalidOperationException("write set already committed");
            }

            _committed = true;
            store = _store;
            operations = [.. _operations];
            views = [.. _views];
        }

        if (store is null)
        {
            return;
        }

        var entered = new List<PrefixedStorage.InFlight>(views.Length);
        try
        {
            foreach (var view in views)
            {
                entered.Add(view.Enter());
            }

            await store.TransactAsync(operations, ct).ConfigureAwait(false);
        }
        finally
        {
            entered.ForEach(e => e.Dispose());
        }
    }
}
