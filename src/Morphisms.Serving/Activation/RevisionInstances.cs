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

    /// <summary>Picks a ready instance round-robin, or null when there is none.</summary>
    public IPEndPoint? TryPick(string revision) => State(revision).TryPick();

    /// <summary>Waits for a ready instance of <paramref name="revision"/>, holding at most <paramref name="maxQueued"/> requests.</summary>
    /// <exception cref="ActivatorOverloadedException">The queue is full, or the revision was <see cref="Close"/>d.</exception>
    /// <exception cref="OperationCanceledException"><paramref name="cancellationToken"/> fired first.</exception>
    public Task<IPEndPoint> WaitAsync(string revision, int maxQueued, TimeSpan retryAfter, CancellationToken cancellationToken) =>
        State(revision).WaitAsync(revision, maxQueued, retryAfter, cancellationToken);

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
        // A null result: the set was closed while the request waited.
        private readonly LinkedList<TaskCompletionSource<IPEndPoint?>> _waiters = new();
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
                while (_endpoints.Length > 0 && _waiters.First is { } first)
                {
                    _waiters.RemoveFirst();
                    release.Add((first.Value, PickLocked()));
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
                fail = [.. _waiters];
                _waiters.Clear();
            }

            foreach (var waiter in fail)
            {
                waiter.TrySetResult(null);
            }
        }

        public IPEndPoint? TryPick()
        {
            lock (_gate)
            {
                return _endpoints.Length == 0 ? null : PickLocked();
            }
        }

        public async Task<IPEndPoint> WaitAsync(string revision, int maxQueued, TimeSpan retryAfter, CancellationToken cancellationToken)
        {
            TaskCompletionSource<IPEndPoint?> waiter;
            LinkedListNode<TaskCompletionSource<IPEndPoint?>> node;
            lock (_gate)
            {
                if (_closed is not null)
                {
                    throw new ActivatorOverloadedException(revision, _closed, retryAfter);
                }

                if (_endpoints.Length > 0)
                {
                    return PickLocked();
                }

                if (_waiters.Count >= maxQueued)
                {
                    throw new ActivatorOverloadedException(revision, $"{maxQueued} requests already wait for an instance", retryAfter);
                }

                waiter = new TaskCompletionSource<IPEndPoint?>(TaskCreationOptions.RunContinuationsAsynchronously);
                node = _waiters.AddLast(waiter);
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

        private IPEndPoint PickLocked()
        {
            var endpoint = _endpoints[_next % _endpoints.Length];
            _next = (_next + 1) % _endpoints.Length;
            return endpoint;
        }
    }
}
