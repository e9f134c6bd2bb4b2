using System.Collections.Concurrent;
using System.Runtime.InteropServices;
using static Morphisms.Serving.Gateway.SpliceInterop;

namespace Morphisms.Serving.Gateway;

/// <summary>
/// One relay thread with its own epoll instance. Entries (pairs, readiness waits) arrive through a queue and an
/// eventfd wake-up; from then on only this thread touches an entry's state and its epoll registrations, so nothing
/// in the data path takes a lock.
/// </summary>
internal sealed unsafe class SpliceRelayLoop : IDisposable
{
    private const int MaxEvents = 256;
    private const ulong WakeToken = ulong.MaxValue;

    private readonly int _epoll;
    private readonly int _wake;
    private readonly Thread _thread;
    private readonly ConcurrentQueue<RelayEntry> _incoming = new();
    private readonly ConcurrentQueue<RelayEntry> _aborts = new();

    // Guards _closed against the eventfd write in Wake, so Dispose never closes the eventfd under a writer.
    private readonly Lock _gate = new();
    private bool _closed;
    private bool _disposed;
    private volatile bool _stopping;
    private int _wakePending;

    // Thread-owned: slot index -> entry (the epoll token is slot << 1 | which descriptor).
    private RelayEntry?[] _slots = new RelayEntry?[64];
    private readonly Stack<int> _freeSlots = new();
    private int _usedSlots;
    private int _active;

    private SpliceRelayLoop(int epoll, int wake, int index)
    {
        _epoll = epoll;
        _wake = wake;
        _thread = new Thread(Run) { IsBackground = true, Name = $"splice-relay-{index}" };
    }

    /// <summary>The loop's epoll descriptor (tests read its registrations from /proc).</summary>
    internal int Epoll => _epoll;

    /// <summary>Entries (pairs and waits) registered with this loop now.</summary>
    public int Active => Volatile.Read(ref _active);

    /// <summary>Starts a loop, or returns null when epoll or the eventfd cannot be had.</summary>
    public static SpliceRelayLoop? TryStart(int index)
    {
        var epoll = EpollCreate1(EpollCloexec);
        if (epoll < 0)
        {
            return null;
        }

        var wake = EventFd(0, ONonBlock | OCloexec);
        if (wake < 0 || Control(epoll, EpollCtlAdd, wake, EpollIn, WakeToken) != 0)
        {
            CloseQuietly(wake);
            CloseQuietly(epoll);
            return null;
        }

        var loop = new SpliceRelayLoop(epoll, wake, index);
        loop._thread.Start();
        return loop;
    }

    /// <summary>Hands an entry to the loop; false when the loop is shutting down (the caller releases the entry).</summary>
    public bool TryAdd(RelayEntry entry)
    {
        lock (_gate)
        {
            if (_closed)
            {
                return false;
            }

            _incoming.Enqueue(entry);
            Wake();
            return true;
        }
    }

    /// <summary>Asks the loop to end <paramref name="entry"/>; an entry already over is left alone.</summary>
    public void RequestAbort(RelayEntry entry)
    {
        lock (_gate)
        {
            if (!_closed)
            {
                _aborts.Enqueue(entry);
                Wake();
            }
        }
    }

    /// <summary>Ends every entry (their tasks complete, their handles are released), stops the thread, closes epoll.</summary>
    public void Dispose()
    {
        lock (_gate)
        {
            if (_disposed)
            {
                return;
            }

            _disposed = true;
            _closed = true;
            _stopping = true;
            Wake();
        }

        _thread.Join();
        CloseQuietly(_wake);
        CloseQuietly(_epoll);
    }

    private void Wake()
    {
        // One eventfd write per batch of requests: the loop drains the eventfd, then clears the flag, then the queues.
        if (Interlocked.Exchange(ref _wakePending, 1) == 0)
        {
            ulong one = 1;
            _ = Write(_wake, &one, sizeof(ulong));
        }
    }

    private void Run()
    {
        var events = (byte*)NativeMemory.Alloc((nuint)(MaxEvents * EventSize));
        try
        {
            while (true)
            {
                var count = EpollWait(_epoll, events, MaxEvents, -1);
                if (count < 0)
                {
                    if (Marshal.GetLastPInvokeError() == EIntr)
                    {
                        continue;
                    }

                    return; // epoll itself failed: end every entry below rather than spin
                }

                var woken = false;
                for (var i = 0; i < count; i++)
                {
                    var token = DataAt(events, i);
                    if (token == WakeToken)
                    {
                        // Handled after the batch: new entries take freed slots, and a later event of this batch may
                        // still carry a freed slot's token (it must find the slot empty, not a new entry).
                        woken = true;
                        continue;
                    }

                    var slot = (int)(token >> 1);
                    if (slot < _usedSlots && _slots[slot] is { } entry && !Handle(entry, (token & 1) == 0, EventsAt(events, i)))
                    {
                        End(entry);
                    }
                }

                if (woken && !TakeRequests())
                {
                    return;
                }
            }
        }
        finally
        {
            lock (_gate)
            {
                _closed = true;
            }

            for (var slot = 0; slot < _usedSlots; slot++)
            {
                if (_slots[slot] is { } entry)
                {
                    End(entry);
                }
            }

            while (_incoming.TryDequeue(out var entry))
            {
                entry.Release(_epoll, registered: false);
            }

            NativeMemory.Free(events);
        }
    }

    private bool Handle(RelayEntry entry, bool firstDescriptor, uint events)
    {
        try
        {
            return entry.OnEvent(_epoll, firstDescriptor, events);
        }
        catch (Exception)
        {
            // Nothing in OnEvent is expected to throw; if it does, that entry ends and the relay goes on.
            return false;
        }
    }

    /// <summary>Registers new entries and ends aborted ones. False when the loop is to stop.</summary>
    private bool TakeRequests()
    {
        // Drain first, then clear the flag, with a full fence before the queues are read. Cleared before the drain, a
        // producer's wake-up written in between was swallowed by the drain while the flag stayed set, so no later
        // producer ever wrote again and their entries sat in the queue for good (the gateway hung at ~500 new
        // connections/s). In this order a producer that saw the flag set enqueued before the exchange below, so the
        // dequeue sees its entry; one that sees it clear writes a wake-up the drain has not consumed.
        ulong drained;
        _ = Read(_wake, &drained, sizeof(ulong));
        Interlocked.Exchange(ref _wakePending, 0);

        while (_incoming.TryDequeue(out var entry))
        {
            var slot = _freeSlots.Count > 0 ? _freeSlots.Pop() : _usedSlots++;
            if (slot == _slots.Length)
            {
                Array.Resize(ref _slots, _slots.Length * 2);
            }

            _slots[slot] = entry;
            entry.Slot = slot;
            Interlocked.Increment(ref _active);
            if (!entry.Register(_epoll))
            {
                End(entry);
            }
        }

        while (_aborts.TryDequeue(out var entry))
        {
            if (entry.Slot >= 0 && _slots[entry.Slot] == entry)
            {
                End(entry);
            }
        }

        return !_stopping;
    }

    private void End(RelayEntry entry)
    {
        _slots[entry.Slot] = null;
        _freeSlots.Push(entry.Slot);
        entry.Slot = -1;
        Interlocked.Decrement(ref _active);
        entry.Release(_epoll, registered: true);
    }
}
