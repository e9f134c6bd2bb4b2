using System.Collections.Concurrent;

namespace Morphisms.Serving.Gateway;

/// <summary>
/// The concurrency per revision that the autoscaler scales on: requests in flight where the gateway sees requests (HTTP
/// mode), and SNI-passthrough connections while they plausibly serve one (confidential mode, where the gateway sees
/// only ciphertext: which side sent bytes last, and when; see <see cref="PassthroughConnection"/>).
/// </summary>
public sealed class RevisionConcurrency
{
    /// <summary>
    /// How long a passthrough connection whose last bytes came from the instance still counts after them: the
    /// autoscaler's sample interval, so a connection that served a request since the last sample counts in it, and an
    /// idle keep-alive connection stops counting a second after its last response.
    /// </summary>
    public static readonly TimeSpan ConnectionIdleAfter = TimeSpan.FromSeconds(1);

    private readonly ConcurrentDictionary<string, Counts> _revisions = new(StringComparer.Ordinal);

    /// <summary>Current in-flight count of <paramref name="revision"/>: its requests, and its passthrough connections serving now.</summary>
    public int Current(string revision)
    {
        if (!_revisions.TryGetValue(revision, out var counts))
        {
            return 0;
        }

        var current = Volatile.Read(ref counts.Requests);
        foreach (var connection in counts.Connections.Keys)
        {
            if (connection.Serving)
            {
                current++;
            }
        }

        return current;
    }

    /// <summary>Counts one more request in flight until the returned handle is disposed.</summary>
    public IDisposable Begin(string revision)
    {
        var counts = _revisions.GetOrAdd(revision, _ => new Counts());
        Interlocked.Increment(ref counts.Requests);
        return new Handle(counts);
    }

    /// <summary>
    /// Follows one passthrough connection of <paramref name="revision"/>, from its ClientHello (the client's bytes) until
    /// the returned connection is disposed; it counts only while <see cref="PassthroughConnection.Serving"/>.
    /// </summary>
    internal PassthroughConnection BeginConnection(string revision, TimeProvider time)
    {
        var counts = _revisions.GetOrAdd(revision, _ => new Counts());
        var connection = new PassthroughConnection(time, counts.Connections);
        counts.Connections.TryAdd(connection, 0);
        return connection;
    }

    private sealed class Counts
    {
        public readonly ConcurrentDictionary<PassthroughConnection, byte> Connections = new();

        public int Requests;
    }

    private sealed class Handle(Counts counts) : IDisposable
    {
        private int _disposed;

        public void Dispose()
        {
            if (Interlocked.Exchange(ref _disposed, 1) == 0)
            {
                Interlocked.Decrement(ref counts.Requests);
            }
        }
    }
}

/// <summary>
/// What the gateway sees of one SNI-passthrough connection's requests: TLS hides them, but not which side sent bytes
/// last, and when. The connection counts as a request in flight while the client sent bytes more recently than the
/// instance (a request outstanding, a long computation with no bytes flowing included), or while any bytes moved
/// within <see cref="RevisionConcurrency.ConnectionIdleAfter"/>. An idle keep-alive connection, whose last bytes were
/// the instance's response, stops counting then: HTTP clients keep pooled connections open for minutes, and counted
/// for their whole life they kept the revision from scaling to zero. What it cannot see: an HTTP/2 connection carrying
/// many requests at once counts as one, and a client whose last bytes on an idle connection were its own (an HTTP/2
/// WINDOW_UPDATE or PING, a TLS alert) keeps it counted until the instance sends something or the connection closes.
/// </summary>
/// <remarks>
/// The marks are on the relay's per-read path: one timestamp and one plain write each, no lock, no allocation. Each
/// side has its own field, so two threads marking at once lose nothing; the comparison is as good as the clock's
/// resolution (ticks of <see cref="TimeProvider.GetTimestamp"/>).
/// </remarks>
internal sealed class PassthroughConnection : IDisposable
{
    private const long Never = long.MinValue;

    private readonly TimeProvider _time;
    private readonly ConcurrentDictionary<PassthroughConnection, byte> _owner;
    private long _clientAt;
    private long _instanceAt = Never;

    internal PassthroughConnection(TimeProvider time, ConcurrentDictionary<PassthroughConnection, byte> owner)
    {
        _time = time;
        _owner = owner;

        // It starts with the ClientHello, the client's bytes: a handshake under way is a request's start.
        _clientAt = time.GetTimestamp();
    }

    /// <summary>True while the connection plausibly serves a request (see the type's summary).</summary>
    public bool Serving
    {
        get
        {
            var client = Volatile.Read(ref _clientAt);
            var instance = Volatile.Read(ref _instanceAt);
            return client > instance || _time.GetElapsedTime(Math.Max(client, instance)) < RevisionConcurrency.ConnectionIdleAfter;
        }
    }

    /// <summary>Bytes came from the client (marked before they are passed on).</summary>
    public void ClientSent() => Volatile.Write(ref _clientAt, _time.GetTimestamp());

    /// <summary>Bytes came from the instance (marked before they are passed on).</summary>
    public void InstanceSent() => Volatile.Write(ref _instanceAt, _time.GetTimestamp());

    /// <summary>The connection is over: it no longer counts.</summary>
    public void Dispose() => _owner.TryRemove(this, out _);
}
