using System.Net;
using System.Net.Sockets;
using System.Runtime.InteropServices;

namespace Morphisms.Serving.Gateway;

/// <summary>
/// Moves the bytes of established client/backend pairs on a few dedicated threads with epoll and splice(2): no
/// thread-pool hop per chunk and no copy through user space. Each direction goes socket → pipe → socket; a full
/// destination stops the reading of its source (the pipe is the only buffer), an end of stream is passed on as a
/// half-close, and an error ends the pair. Linux only: <see cref="TryCreate"/> returns null elsewhere, or when
/// epoll cannot be had, and the gateway then uses its async pumps.
/// <para>
/// Sockets it will relay are best set up with <see cref="ReceiveAsync"/>, <see cref="SendAllAsync"/> and
/// <see cref="ConnectAsync"/>: non-blocking calls that wait on a relay thread. .NET's own async calls would register
/// the socket with .NET's epoll thread for the rest of its life, and every chunk relayed later would then also wake
/// that thread and queue a thread-pool item that finds nothing to do.
/// </para>
/// </summary>
internal sealed class SpliceRelay : IDisposable
{
    private readonly SpliceRelayLoop[] _loops;
    private int _next;
    private long _started;

    private SpliceRelay(SpliceRelayLoop[] loops) => _loops = loops;

    /// <summary>Pairs being relayed, and set-up waits pending, now, over all threads.</summary>
    public int Active => _loops.Sum(l => l.Active);

    /// <summary>Pairs handed to the relay since it started.</summary>
    public long Started => Interlocked.Read(ref _started);

    /// <summary>The relay threads' epoll descriptors.</summary>
    internal IEnumerable<int> EpollDescriptors => _loops.Select(l => l.Epoll);

    /// <summary>Relay threads.</summary>
    public int Threads => _loops.Length;

    /// <summary>
    /// The default number of relay threads: one up to 3 cores, two from 4. A relay thread spends its time in
    /// splice(2) and epoll_wait; one keeps up with many connections, and under load it collects more events per
    /// wake-up. On a small machine the other core is better left to accepting, the ClientHello and the instances
    /// themselves than to a second relay thread competing for it (on 2 cores, 16 keep-alive echo connections: about
    /// the same throughput with two threads, at 5–10 % more CPU per request).
    /// </summary>
    public static int DefaultThreads => Environment.ProcessorCount >= 4 ? 2 : 1;

    /// <summary>Starts <paramref name="threads"/> relay loops, or returns null when the relay cannot run here.</summary>
    public static SpliceRelay? TryCreate(int threads)
    {
        if (!SpliceInterop.Supported)
        {
            return null;
        }

        var loops = new List<SpliceRelayLoop>();
        for (var i = 0; i < Math.Max(1, threads); i++)
        {
            if (SpliceRelayLoop.TryStart(i) is not { } loop)
            {
                break;
            }

            loops.Add(loop);
        }

        return loops.Count == 0 ? null : new SpliceRelay([.. loops]);
    }

    /// <summary>
    /// Hands an established pair to a relay thread. No async operation may be pending on either socket, and both
    /// stay owned by the caller: dispose them after <see cref="RelayedPair.Completion"/>. Null when the relay cannot
    /// take the pair (no descriptors for the pipes, or shutting down): the caller copies the bytes itself.
    /// <paramref name="firstBackendBytes"/> is called once, on the thread pool, with the timestamp
    /// (<see cref="System.Diagnostics.Stopwatch.GetTimestamp"/>) at which the first bytes from the backend arrived.
    /// Every read, in either direction, is marked on <paramref name="activity"/> before it is passed on.
    /// </summary>
    public RelayedPair? TryStart(Socket client, Socket backend, Action<long>? firstBackendBytes, PassthroughConnection? activity)
    {
        var loop = NextLoop();
        if (RelayedPair.TryCreate(loop, client, backend, firstBackendBytes, activity) is not { } pair)
        {
            return null;
        }

        if (!loop.TryAdd(pair))
        {
            pair.Release(epoll: -1, registered: false);
            return null;
        }

        Interlocked.Increment(ref _started);
        return pair;
    }

    /// <summary>Receives what <paramref name="socket"/> has, waiting on a relay thread while it has nothing.</summary>
    public async ValueTask<int> ReceiveAsync(Socket socket, Memory<byte> buffer, CancellationToken cancellationToken)
    {
        socket.Blocking = false;
        while (true)
        {
            var read = socket.Receive(buffer.Span, SocketFlags.None, out var error);
            if (error == SocketError.Success)
            {
                return read;
            }

            if (error != SocketError.WouldBlock)
            {
                throw new SocketException((int)error);
            }

            await WaitAsync(socket, writable: false, cancellationToken).ConfigureAwait(false);
        }
    }

    /// <summary>Sends all of <paramref name="bytes"/>, waiting on a relay thread while the socket's buffer is full.</summary>
    public async ValueTask SendAllAsync(Socket socket, ReadOnlyMemory<byte> bytes, CancellationToken cancellationToken)
    {
        socket.Blocking = false;
        while (!bytes.IsEmpty)
        {
            var sent = socket.Send(bytes.Span, SocketFlags.None, out var error);
            if (error == SocketError.Success)
            {
                bytes = bytes[sent..];
            }
            else if (error == SocketError.WouldBlock)
            {
                await WaitAsync(socket, writable: true, cancellationToken).ConfigureAwait(false);
            }
            else
            {
                throw new SocketException((int)error);
            }
        }
    }

    /// <summary>Connects <paramref name="socket"/>, waiting on a relay thread for the handshake.</summary>
    public async ValueTask ConnectAsync(Socket socket, IPEndPoint endpoint, CancellationToken cancellationToken)
    {
        socket.Blocking = false;
        if (StartConnect(socket, endpoint))
        {
            return;
        }

        await WaitAsync(socket, writable: true, cancellationToken).ConfigureAwait(false);
        var error = (SocketError)(int)socket.GetSocketOption(SocketOptionLevel.Socket, SocketOptionName.Error)!;
        if (error != SocketError.Success)
        {
            throw new SocketException((int)error);
        }
    }

    /// <summary>Ends every relayed pair and stops the threads.</summary>
    public void Dispose()
    {
        foreach (var loop in _loops)
        {
            loop.Dispose();
        }
    }

    /// <summary>
    /// Waits on a relay thread until <paramref name="socket"/> is readable or writable, or has failed (the next call
    /// on it tells). Throws <see cref="ObjectDisposedException"/> when the socket or the relay is closed.
    /// </summary>
    private async Task WaitAsync(Socket socket, bool writable, CancellationToken cancellationToken)
    {
        cancellationToken.ThrowIfCancellationRequested();
        var loop = NextLoop();
        var wait = ReadinessWait.Create(loop, socket, writable, cancellationToken);
        if (!loop.TryAdd(wait))
        {
            wait.Release(epoll: -1, registered: false);
            throw new ObjectDisposedException(nameof(SpliceRelay));
        }

        // Registered only once the loop has the wait: an abort the loop saw first would be dropped.
        using (cancellationToken.UnsafeRegister(static state => ((ReadinessWait)state!).Cancel(), wait))
        {
            await wait.Completion.ConfigureAwait(false);
        }
    }

    /// <summary>Starts a non-blocking connect; true when it completed at once. Throws on an immediate failure.</summary>
    private static unsafe bool StartConnect(Socket socket, IPEndPoint endpoint)
    {
        var address = endpoint.Serialize(); // the native sockaddr on Linux
        int result;
        int errno;
        fixed (byte* bytes = address.Buffer.Span)
        {
            result = SpliceInterop.Connect((int)socket.Handle, bytes, address.Size);
            errno = Marshal.GetLastPInvokeError();
        }

        if (result == 0)
        {
            return true;
        }

        // EINTR: the handshake goes on in the background, as with EINPROGRESS.
        return errno is SpliceInterop.EInProgress or SpliceInterop.EIntr
            ? false
            : throw new SocketException((int)(errno == SpliceInterop.EConnRefused ? SocketError.ConnectionRefused : SocketError.SocketError));
    }

    private SpliceRelayLoop NextLoop() => _loops[(uint)Interlocked.Increment(ref _next) % (uint)_loops.Length];
}
