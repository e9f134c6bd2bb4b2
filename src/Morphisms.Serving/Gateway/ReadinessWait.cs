using System.Net.Sockets;
using static Morphisms.Serving.Gateway.SpliceInterop;

namespace Morphisms.Serving.Gateway;

/// <summary>
/// A one-shot wait, on a relay loop, for a socket to become readable or writable. The gateway sets up connections it
/// will relay this way rather than with .NET's async socket calls: those would register the socket with .NET's own
/// epoll thread for good, and every chunk the relay later moves would wake that thread and queue a thread-pool item
/// for nothing.
/// </summary>
internal sealed class ReadinessWait : RelayEntry
{
    private readonly SafeSocketHandle _handle;
    private readonly int _fd;
    private readonly uint _events;
    private readonly TaskCompletionSource _completion = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private readonly CancellationToken _cancellationToken;
    private volatile bool _canceled;

    private ReadinessWait(SpliceRelayLoop loop, SafeSocketHandle handle, uint events, CancellationToken cancellationToken)
        : base(loop)
    {
        _handle = handle;
        _fd = (int)handle.DangerousGetHandle();
        _events = events;
        _cancellationToken = cancellationToken;
    }

    /// <summary>Completes when the socket is ready (or failed: errors and hang-ups count), or cancels.</summary>
    public Task Completion => _completion.Task;

    /// <summary>Takes a reference on the socket's handle for the wait; throws <see cref="ObjectDisposedException"/> when it is closed.</summary>
    public static ReadinessWait Create(SpliceRelayLoop loop, Socket socket, bool writable, CancellationToken cancellationToken)
    {
        var handle = socket.SafeHandle;
        var referenced = false;
        handle.DangerousAddRef(ref referenced);
        return new ReadinessWait(loop, handle, writable ? EpollOut : EpollIn, cancellationToken);
    }

    /// <summary>Ends the wait as canceled (for the token's registration, made once the loop has the wait).</summary>
    public void Cancel()
    {
        _canceled = true;
        Abort();
    }

    internal override bool Register(int epoll) =>
        Control(epoll, EpollCtlAdd, _fd, _events | EpollOneShot, Token(firstDescriptor: true)) == 0;

    internal override bool OnEvent(int epoll, bool firstDescriptor, uint events) => false; // once is all it waits for

    internal override void Release(int epoll, bool registered)
    {
        if (registered)
        {
            // One-shot leaves the registration in place, disabled; the socket may be relayed by this loop next.
            _ = Control(epoll, EpollCtlDel, _fd, 0, 0);
        }

        _handle.DangerousRelease();
        if (_canceled)
        {
            _completion.TrySetCanceled(_cancellationToken);
        }
        else
        {
            _completion.TrySetResult();
        }
    }
}
