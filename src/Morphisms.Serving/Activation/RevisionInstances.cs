using System.Collections.Concurrent;
using System.Net;

namespace Morphisms.Serving.Activation;

/// <summary>
/// The ready instances of every revision, and the requests waiting for one. The runtime marks
/// instances ready or gone; the activator picks round-robin or waits. The host opens a revision's set when it
/// starts the revision and closes it when it stops it.
/// </summary>
public sealed class RevisionInstances
{
    private readonly ConcurrentDictionary<string, RevisionState> _revisions = new(StringComparer.Ordinal);

    /// <summary>Replaces the ready instances of <paramref name="revision"/> and releases waiting requests if there are any.</summary>
    public void SetReady(string revision, IReadOnlyList<IPEndPoint> endpoints) => State(revision).SetReady(endpoints);

    /// <summary>The ready instances of <paramref name="revision"/>.</summary>
    public IReadOnlyList<IPEndPoint> Ready(string revision) => State(revision).Endpoints;

    /// <summary>Requests currently held for <paramref name="revision"/>.</summary>
    public int Queued(string revision) => State(revision).QueuedCount;

    /// <summary>
    /// Picks a ready instance round-robin, or null when there is none; never one of <paramref name="exclude"/> (instances
    /// that refused a connection: stopping, or gone before the runtime noticed).
    /// </summary>
    public IPEndPoint? TryPick(string revision, IReadOnlyCollection<IPEndPoint>? exclude = null) => State(revision).TryPick(exclude);

    /// <summary>
    /// Waits for a ready instance of <paramref name="revision"/> other than <paramref name="exclude"/>, holding at most
    /// <paramref name="maxQueued"/> requests.
    /// </summary>
    /// <exception cref="ActivatorOverloadedException">The queue is full, or the revision was <see cref="Close"/>d.</exception>
    /// <exception cref="OperationCanceledException"><paramref name="cancellationToken"/> fired first.</exception>
    public Task<IPEndPoint> WaitAsync(string revision, int maxQueued, TimeSpan retryAfter, CancellationToken cancellationToken, IReadOnlyCollection<IPEndPoint>? exclude = null) =>
        State(revision).WaitAsync(revision, maxQueued, retryAfter, exclude, cancellationToken);

    /// <summary>
    /// Gives <paramref name="revision"/> a fresh set as it starts to run, replacing one <see cref="Close"/>d when it
    /// last stopped; a set still open (requests already waiting for it) is kept.
    /// </summary>
    public void Open(string revision) =>
        _revisions.AddOrUpdate(revision, _ => new RevisionState(), (_, current) => current.IsClosed ? new RevisionState() : current);

    /// <summary>
    /// <paramref name="revision"/> stopped: the requests waiting for it fail at once with <paramref name="reason"/>,
    /// and so does any that asks later, until <see cref="Open"/> starts a fresh set; endpoints it is still given are
    /// not handed out. Without this a held request waited out the whole timeout, or was given the instances of
    /// whatever ran next under the same name.
    /// </summary>
    public void Close(string revision, string reason) => State(revision).Close(reason);

    private RevisionState State(string revision) => _revisions.GetOrAdd(revision, _ => new RevisionState());

    private sealed class RevisionState
    {
        private readonly object _gate = new();
        // A null result: the set was closed while the request waited. Each waiter with the instances it must not get.
        private readonly LinkedList<Waiter> _waiters = new();
        private IPEndPoint[] _endpoints = [];
        private int _next;
        private string? _closed;

        public bool IsClosed
        {
            get
            {
                lock (_gate)
                {
                    return _closed is not null;
                }
            }
        }

        public IReadOnlyList<IPEndPoint> Endpoints
        {
            get
            {
                lock (_gate)
                {
                    return _endpoints;
                }
            }
        }

        public int QueuedCount
        {
            get
            {
                lock (_gate)
                {
                    return _waiters.Count;
                }
            }
        }

        public void SetReady(IReadOnlyList<IPEndPoint> endpoints)
        {
            List<(TaskCompletionSource<IPEndPoint?> Waiter, IPEndPoint Endpoint)> release = [];
            lock (_gate)
            {
                if (_closed is not null)
                {
                    return;
                }

                _endpoints = [.. endpoints];
                for (var node = _waiters.First; node is not null && _endpoints.Length > 0;)
                {
                    var next = node.Next;
                    // A waiter that excludes every ready instance keeps waiting, for one it may have.
                    if (PickLocked(node.Value.Exclude) is { } endpoint)
                    {
                        _waiters.Remove(node);
                        release.Add((node.Value.Completion, endpoint));
                    }

                    node = next;
                }
            }

            // Completed outside the lock: continuations run asynchronously anyway, but never under it.
            foreach (var (waiter, endpoint) in release)
            {
                waiter.TrySetResult(endpoint);
            }
        }

        public void Close(string reason)
        {
            List<TaskCompletionSource<IPEndPoint?>> fail;
            lock (_gate)
            {
                _closed ??= reason;
                _endpoints = [];
                fail = [.. _waiters.Select(w => w.Completion)];
                _waiters.Clear();
            }

            foreach (var waiter in fail)
            {
                waiter.TrySetResult(null);
            }
        }

        public IPEndPoint? TryPick(IReadOnlyCollection<IPEndPoint>? exclude)
        {
            lock (_gate)
            {
                return PickLocked(exclude);
            }
        }

        public async Task<IPEndPoint> WaitAsync(string revision, int maxQueued, TimeSpan retryAfter, IReadOnlyCollection<IPEndPoint>? exclude, CancellationToken cancellationToken)
        {
            TaskCompletionSource<IPEndPoint?> waiter;
            LinkedListNode<Waiter> node;
            lock (_gate)
            {
                if (_closed is not null)
                {
                    throw new ActivatorOverloadedException(revision, _closed, retryAfter);
                }

                if (PickLocked(exclude) is { } ready)
                {
                    return ready;
                }

                if (_waiters.Count >= maxQueued)
                {
                    throw new ActivatorOverloadedException(revision, $"{maxQueued} requests already wait for an instance", retryAfter);
                }

                waiter = new TaskCompletionSource<IPEndPoint?>(TaskCreationOptions.RunContinuationsAsynchronously);
                node = _waiters.AddLast(new Waiter(waiter, exclude));
            }

            await using var registration = cancellationToken.Register(() =>
            {
                lock (_gate)
                {
                    if (node.List is not null)
                    {
                        _waiters.Remove(node);
                    }
                }

                waiter.TrySetCanceled(cancellationToken);
            });
            return await waiter.Task.ConfigureAwait(false) ?? throw Closed(revision, retryAfter);
        }

        private ActivatorOverloadedException Closed(string revision, TimeSpan retryAfter)
        {
            lock (_gate)
            {
                return new ActivatorOverloadedException(revision, _closed!, retryAfter);
            }
        }

        // The next ready instance round-robin that is not excluded, or null.
        private IPEndPoint? PickLocked(IReadOnlyCollection<IPEndPoint>? exclude)
        {
            for (var tried = 0; tried < _endpoints.Length; tried++)
            {
                var endpoint = _endpoints[_next % _endpoints.Length];
                _next = (_next + 1) % _endpoints.Length;
                if (exclude is null || !exclude.Contains(endpoint))
                {
                    return endpoint;
                }
            }

            return null;
        }
    }

    private sealed record Waiter(TaskCompletionSource<IPEndPoint?> Completion, IReadOnlyCollection<IPEndPoint>? Exclude);
}
