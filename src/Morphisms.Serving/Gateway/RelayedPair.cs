using System.Net.Sockets;
using System.Runtime.InteropServices;
using static Morphisms.Serving.Gateway.SpliceInterop;

namespace Morphisms.Serving.Gateway;

/// <summary>
/// One client/backend connection pair moved by a <see cref="SpliceRelayLoop"/>: a pipe per direction, the bytes in
/// each pipe, and which readiness each socket waits for. Everything but <see cref="RelayEntry.Abort"/> and
/// <see cref="Completion"/> runs on the loop's thread.
/// </summary>
internal sealed unsafe class RelayedPair : RelayEntry
{
    private readonly SafeSocketHandle _client;
    private readonly SafeSocketHandle _backend;
    private readonly Direction _upstream;
    private readonly Direction _downstream;
    private readonly TaskCompletionSource _completion = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private Action<long>? _firstBackendBytes;
    private uint _clientInterest;
    private uint _backendInterest;

    private RelayedPair(SpliceRelayLoop loop, SafeSocketHandle client, SafeSocketHandle backend, int* pipes, Action<long>? firstBackendBytes, PassthroughConnection? activity)
        : base(loop)
    {
        _client = client;
        _backend = backend;
        ClientFd = (int)client.DangerousGetHandle();
        BackendFd = (int)backend.DangerousGetHandle();
        _upstream = new Direction(ClientFd, BackendFd, pipes[0], pipes[1], activity, fromClient: true);
        _downstream = new Direction(BackendFd, ClientFd, pipes[2], pipes[3], activity, fromClient: false);
        _firstBackendBytes = firstBackendBytes;
    }

    /// <summary>Completes when the pair is over: both directions finished, an error, or an abort.</summary>
    public Task Completion => _completion.Task;

    internal int ClientFd { get; }

    internal int BackendFd { get; }

    /// <summary>
    /// Takes a reference on both socket handles (so neither descriptor number can be closed and reused while the
    /// loop uses it) and makes the two pipes. Null when a pipe cannot be made (e.g. out of descriptors): the caller
    /// falls back to its async pumps. Throws <see cref="ObjectDisposedException"/> when a socket is already closed.
    /// </summary>
    public static RelayedPair? TryCreate(SpliceRelayLoop loop, Socket client, Socket backend, Action<long>? firstBackendBytes, PassthroughConnection? activity)
    {
        // splice(2) on a socket blocks unless the descriptor itself is O_NONBLOCK (SPLICE_F_NONBLOCK covers only the
        // pipe). The set-up calls made it so already (SpliceRelay's or .NET's async ones); then this costs no syscall.
        client.Blocking = false;
        backend.Blocking = false;
        var clientHandle = client.SafeHandle;
        var backendHandle = backend.SafeHandle;
        var clientReferenced = false;
        var backendReferenced = false;
        var pipes = stackalloc int[4] { -1, -1, -1, -1 };
        var created = false;
        try
        {
            clientHandle.DangerousAddRef(ref clientReferenced);
            backendHandle.DangerousAddRef(ref backendReferenced);
            if (Pipe2(pipes, ONonBlock | OCloexec) != 0 || Pipe2(pipes + 2, ONonBlock | OCloexec) != 0)
            {
                return null;
            }

            created = true;
            return new RelayedPair(loop, clientHandle, backendHandle, pipes, firstBackendBytes, activity);
        }
        finally
        {
            if (!created)
            {
                for (var i = 0; i < 4; i++)
                {
                    CloseQuietly(pipes[i]);
                }

                if (clientReferenced)
                {
                    clientHandle.DangerousRelease();
                }

                if (backendReferenced)
                {
                    backendHandle.DangerousRelease();
                }
            }
        }
    }

    /// <summary>Registers both sockets for reading.</summary>
    internal override bool Register(int epoll)
    {
        _clientInterest = EpollIn;
        _backendInterest = EpollIn;
        return Control(epoll, EpollCtlAdd, ClientFd, EpollIn, Token(firstDescriptor: true)) == 0
            && Control(epoll, EpollCtlAdd, BackendFd, EpollIn, Token(firstDescriptor: false)) == 0;
    }

    /// <summary>
    /// Handles readiness of one socket (the first descriptor is the client's). Returns false when the pair is over
    /// (both directions finished, or an error) and must be released.
    /// </summary>
    internal override bool OnEvent(int epoll, bool clientSide, uint events)
    {
        var reading = clientSide ? _upstream : _downstream;
        var writing = clientSide ? _downstream : _upstream;
        var interest = clientSide ? _clientInterest : _backendInterest;
        if (interest == 0)
        {
            // A parked socket (see UpdateInterest) reports only errors and hang-ups. A hang-up alone changes nothing
            // (its peer closed, and what is left for this socket waits on the other one); an error means the socket
            // is gone (a reset, or Socket.Dispose's abortive disconnect), and what is in flight has nowhere to go.
            return (events & EpollErr) == 0 && !EitherClosed();
        }

        var ok = true;
        if ((events & (EpollIn | EpollErr | EpollHup)) != 0 && reading.WantsRead)
        {
            ok = reading.OnReadable();
            if (_firstBackendBytes is { } firstBytes && _downstream.Moved)
            {
                // Foreign code never runs on the relay thread: the observer gets the time the bytes arrived.
                _firstBackendBytes = null;
                ThreadPool.UnsafeQueueUserWorkItem(static s => s.Callback(s.At), (Callback: firstBytes, At: System.Diagnostics.Stopwatch.GetTimestamp()), preferLocal: false);
            }
        }

        if (ok && (events & (EpollOut | EpollErr | EpollHup)) != 0 && writing.WantsWrite)
        {
            ok = writing.Flush();
        }

        // Socket.Dispose on a handle the relay still references disconnects the socket and then waits for the
        // release; a read that happened to return queued bytes instead of the error must not keep it waiting.
        if (!ok || EitherClosed())
        {
            return false;
        }

        return !(_upstream.Finished && _downstream.Finished) && UpdateInterest(epoll);
    }

    /// <summary>Deregisters, closes the pipes, releases the socket handles and completes <see cref="Completion"/>.</summary>
    internal override void Release(int epoll, bool registered)
    {
        if (registered)
        {
            // Explicit: the sockets stay open (ServeAsync owns them), so epoll would keep them otherwise.
            _ = Control(epoll, EpollCtlDel, ClientFd, 0, 0);
            _ = Control(epoll, EpollCtlDel, BackendFd, 0, 0);
        }

        _upstream.ClosePipe();
        _downstream.ClosePipe();
        _client.DangerousRelease();
        _backend.DangerousRelease();
        _completion.TrySetResult();
    }

    private bool EitherClosed() => _client.IsClosed || _backend.IsClosed;

    /// <summary>
    /// Level-triggered interest per socket: readable while its outgoing pipe is empty (back-pressure: a full pipe
    /// stops the reading), writable while its incoming pipe holds bytes. A socket that needs neither is "parked"
    /// edge-triggered with no events: level-triggered, a hang-up (which epoll always reports) would wake the loop
    /// on every wait; edge-triggered it still reports the error of a reset or a dispose once.
    /// </summary>
    private bool UpdateInterest(int epoll)
    {
        var client = Interest(_upstream, _downstream);
        var backend = Interest(_downstream, _upstream);
        if (client != _clientInterest)
        {
            _clientInterest = client;
            if (Control(epoll, EpollCtlMod, ClientFd, client == 0 ? EpollEdgeTriggered : client, Token(firstDescriptor: true)) != 0)
            {
                return false;
            }
        }

        if (backend != _backendInterest)
        {
            _backendInterest = backend;
            if (Control(epoll, EpollCtlMod, BackendFd, backend == 0 ? EpollEdgeTriggered : backend, Token(firstDescriptor: false)) != 0)
            {
                return false;
            }
        }

        return true;

        static uint Interest(Direction from, Direction to) => (from.WantsRead ? EpollIn : 0) | (to.WantsWrite ? EpollOut : 0);
    }

    /// <summary>One direction: source socket → pipe → destination socket; each read is marked on <paramref name="activity"/>.</summary>
    private sealed class Direction(int source, int destination, int pipeRead, int pipeWrite, PassthroughConnection? activity, bool fromClient)
    {
        // One pipe's default capacity; a read moves at most what the socket has queued.
        private const int ChunkBytes = 64 * 1024;
        private const uint Flags = SpliceMove | SpliceNonBlock;

        private int _pipeRead = pipeRead;
        private int _pipeWrite = pipeWrite;

        /// <summary>Bytes in the pipe, not yet written to the destination.</summary>
        private int _buffered;

        private bool _sourceEnded;

        /// <summary>The source ended, everything it sent was written and the destination was half-closed.</summary>
        public bool Finished { get; private set; }

        /// <summary>At least one byte came from the source.</summary>
        public bool Moved { get; private set; }

        public bool WantsRead => !_sourceEnded && _buffered == 0;

        public bool WantsWrite => _buffered > 0;

        /// <summary>Moves what the source has queued into the pipe and on to the destination. False on an error.</summary>
        public bool OnReadable()
        {
            nint moved;
            do
            {
                moved = Splice(source, null, _pipeWrite, null, ChunkBytes, Flags);
            }
            while (moved < 0 && Marshal.GetLastPInvokeError() == EIntr);

            if (moved < 0)
            {
                // EAGAIN: a stale readiness report (the bytes went with an earlier read). Anything else: the source failed.
                return Marshal.GetLastPInvokeError() == EAgain;
            }

            if (moved == 0)
            {
                _sourceEnded = true;
            }
            else
            {
                _buffered += (int)moved;
                Moved = true;

                // Before the flush: once the bytes reach the other side, the mark is there for whoever then looks.
                if (fromClient)
                {
                    activity?.ClientSent();
                }
                else
                {
                    activity?.InstanceSent();
                }
            }

            return Flush();
        }

        /// <summary>
        /// Writes the pipe's bytes to the destination until it is empty or the destination is full (then the caller
        /// waits for writability), and passes the half-close on once the source has ended. False on an error.
        /// </summary>
        public bool Flush()
        {
            while (_buffered > 0)
            {
                var written = Splice(_pipeRead, null, destination, null, (nuint)_buffered, Flags);
                if (written > 0)
                {
                    _buffered -= (int)written;
                    continue;
                }

                var errno = written < 0 ? Marshal.GetLastPInvokeError() : 0;
                if (errno == EIntr)
                {
                    continue;
                }

                return errno == EAgain; // 0 cannot happen with bytes in the pipe; treat it as the error it would be
            }

            if (_sourceEnded && !Finished)
            {
                Finished = true;

                // As TLS close_notify expects; a destination that is already gone will fail the other direction.
                _ = Shutdown(destination, ShutWrite);
            }

            return true;
        }

        public void ClosePipe()
        {
            CloseQuietly(_pipeRead);
            CloseQuietly(_pipeWrite);
            _pipeRead = -1;
            _pipeWrite = -1;
        }
    }
}
