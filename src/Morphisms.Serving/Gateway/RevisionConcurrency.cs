using System.Collections.Concurrent;

namespace Morphisms.Serving.Gateway;

/// <summary>
/// Counts requests (here: connections) in flight per revision: the signal the autoscaler scales on.
/// </summary>
public sealed class RevisionConcurrency
{
    private readonly ConcurrentDictionary<string, StrongBox> _inFlight = new(StringComparer.Ordinal);

    /// <summary>Current in-flight count of <paramref name="revision"/>.</summary>
    public int Current(string revision) => _inFlight.TryGetValue(revision, out var box) ? Volatile.Read(ref box.Value) : 0;

    /// <summary>Counts one more in flight until the returned handle is disposed.</summary>
    public IDisposable Begin(string revision)
    {
        var box = _inFlight.GetOrAdd(revision, _ => new StrongBox());
        Interlocked.Increment(ref box.Value);
        return new Handle(box);
    }

    private sealed class StrongBox
    {
        public int Value;
    }

    private sealed class Handle(StrongBox box) : IDisposable
    {
        private int _disposed;

        public void Dispose()
        {
            if (Interlocked.Exchange(ref _disposed, 1) == 0)
            {
                Interlocked.Decrement(ref box.Value);
            }
        }
    }
}
