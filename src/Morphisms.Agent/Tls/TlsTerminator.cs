using System.Buffers;
using System.Net;
using System.Net.Security;
using System.Net.Sockets;
using Morphisms.Agent.Identity;

namespace Morphisms.Agent.Tls;

/// <summary>
/// Terminates TLS on the instance port with the attested certificate and pipes plaintext to the app: on loopback TCP,
/// or on a UNIX domain socket where the loopback is not the TEE's own (under Gramine, TCP is the host kernel's).
/// The certificate lives in a volatile field read per handshake, so a rollover reaches new connections at once while
/// open connections keep the certificate they were made with and are never dropped. A connection through to the app
/// that moves no byte either way for the idle timeout is closed, so clients that handshake and then say nothing cannot
/// hold every slot; a half-close is forwarded and the other direction goes on under the same timeout alone, while a
/// direction that fails ends both. No connection reaches the app before <see cref="ForwardToApp"/>: until the agent has
/// checked that what listens at the app's endpoint is the app, a client may complete its handshake, but its plaintext
/// is held, and dropped unforwarded if the terminator stops first.
/// </summary>
public sealed class TlsTerminator : IAsyncDisposable
{
    private readonly TcpListener _listener;
    private readonly EndPoint _app;
    private readonly CancellationTokenSource _stop = new();
    private readonly HashSet<Task> _connections = [];

    // Beyond this many open connections the terminator stops accepting (the kernel's backlog holds the rest), so a
    // crowd of idle or half-open clients cannot take every descriptor the agent needs for the KMS and its secrets.
    private readonly SemaphoreSlim _slots;
    private readonly TimeSpan _idleTimeout;
    private readonly TimeProvider _time;
    private volatile SslStreamCertificateContext _context;
    private volatile bool _stopping;
    private Task _accepting = Task.CompletedTask;

    // True once the agent has confirmed who listens at the app's endpoint, false if the terminator stops first. Another
    // process may have bound the app's port before the app did (AppProcess.WaitReadyAsync refuses it): a connection
    // made to the port before that check would hand it decrypted requests. Awaited per connection, after the handshake:
    // once serving it is a completed task, so the normal path pays nothing for it.
    private readonly TaskCompletionSource<bool> _appConfirmed = new(TaskCreationOptions.RunContinuationsAsynchronously);

    /// <summary>The most connections open at once.</summary>
    public const int MaxConnections = 1024;

    /// <summary>
    /// How long a connection through to the app may move no byte in either direction before it is closed: 5 minutes,
    /// longer than any request/response pause an HTTP client expects (YARP's activity timeout is 100 s) and short
    /// enough that idle clients give their slots back. Long-lived idle streams (WebSockets) must ping more often.
    /// </summary>
    public static readonly TimeSpan DefaultIdleTimeout = TimeSpan.FromMinutes(5);

    // Bytes per read, as Stream.CopyToAsync uses (a TLS record is at most 16 KiB; the app's side may give more).
    private const int CopyBufferSize = 81_920;

    /// <summary>Creates a terminator for <paramref name="address"/>:<paramref name="port"/> forwarding to <paramref name="appPort"/>.</summary>
    /// <param name="address">The address to listen on.</param>
    /// <param name="port">The port to listen on (0 picks a free one).</param>
    /// <param name="appPort">The app's plaintext port on loopback.</param>
    /// <param name="certificate">The attested serving certificate.</param>
    /// <param name="maxConnections">The most connections open at once (<see cref="MaxConnections"/> unless a test needs fewer).</param>
    /// <param name="idleTimeout">How long a connection may be silent both ways (<see cref="DefaultIdleTimeout"/> unless given; <see cref="Timeout.InfiniteTimeSpan"/>: never closed for it).</param>
    /// <param name="time">The clock for its timeouts: handshake, idle and drain (the system's unless given).</param>
    public TlsTerminator(string address, int port, int appPort, ServingCertificate certificate, int maxConnections = MaxConnections, TimeSpan? idleTimeout = null, TimeProvider? time = null)
        : this(address, port, new IPEndPoint(IPAddress.Loopback, appPort), certificate, maxConnections, idleTimeout, time)
    {
    }

    /// <summary>Creates a terminator for <paramref name="address"/>:<paramref name="port"/> forwarding to <paramref name="app"/>.</summary>
    /// <param name="address">The address to listen on.</param>
    /// <param name="port">The port to listen on (0 picks a free one).</param>
    /// <param name="app">The app's plaintext endpoint: loopback TCP, or a <see cref="UnixDomainSocketEndPoint"/>.</param>
    /// <param name="certificate">The attested serving certificate.</param>
    /// <param name="maxConnections">The most connections open at once (<see cref="MaxConnections"/> unless a test needs fewer).</param>
    /// <param name="idleTimeout">How long a connection may be silent both ways (<see cref="DefaultIdleTimeout"/> unless given; <see cref="Timeout.InfiniteTimeSpan"/>: never closed for it).</param>
    /// <param name="time">The clock for its timeouts: handshake, idle and drain (the system's unless given).</param>
    public TlsTerminator(string address, int port, EndPoint app, ServingCertificate certificate, int maxConnections = MaxConnections, TimeSpan? idleTimeout = null, TimeProvider? time = null)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(maxConnections, 1);
        _idleTimeout = idleTimeout ?? DefaultIdleTimeout;
        if (_idleTimeout != Timeout.InfiniteTimeSpan)
        {
            ArgumentOutOfRangeException.ThrowIfLessThanOrEqual(_idleTimeout, TimeSpan.Zero, nameof(idleTimeout));
        }

        _time = time ?? TimeProvider.System;
        _slots = new SemaphoreSlim(maxConnections);
        _listener = new TcpListener(IPAddress.Parse(address), port);
        _app = app;
        _context = Context(certificate);
    }

    /// <summary>The bound port (after <see cref="Start"/>).</summary>
    public int Port => ((IPEndPoint)_listener.LocalEndpoint).Port;

    /// <summary>Connections accepted so far.</summary>
    public long Accepted => Interlocked.Read(ref _accepted);

    private long _accepted;

    private static readonly TimeSpan AcceptRetryDelay = TimeSpan.FromMilliseconds(100);

    /// <summary>How long a client has to complete the TLS handshake.</summary>
    private static readonly TimeSpan HandshakeTimeout = TimeSpan.FromSeconds(10);

    /// <summary>Starts accepting.</summary>
    public void Start()
    {
        _listener.Start();
        _accepting = AcceptLoopAsync();
    }

    /// <summary>
    /// Lets connections through to the app: call it once the app is known to own its endpoint. Connections whose
    /// handshake completed before are forwarded now; those still held when the terminator stops are closed unforwarded.
    /// </summary>
    public void ForwardToApp() => _appConfirmed.TrySetResult(true);

    /// <summary>Swaps the certificate for new handshakes.</summary>
    public void Swap(ServingCertificate certificate) => _context = Context(certificate);

    private static SslStreamCertificateContext Context(ServingCertificate certificate) =>
        SslStreamCertificateContext.Create(certificate.Certificate, certificate.Chain, offline: true);

    private async Task AcceptLoopAsync()
    {
        while (!_stop.IsCancellationRequested)
        {
            Socket client;
            try
            {
                await _slots.WaitAsync(_stop.Token).ConfigureAwait(false);
            }
            catch (OperationCanceledException)
            {
                return;
            }

            // StopAsync stops the listener before it cancels: a slot freed by a draining connection must not reach
            // AcceptSocketAsync on a listener that is no longer listening.
            if (_stopping)
            {
                return;
            }

            try
            {
                client = await _listener.AcceptSocketAsync(_stop.Token).ConfigureAwait(false);
            }
            catch (Exception e) when (e is OperationCanceledException or ObjectDisposedException || (e is SocketException or InvalidOperationException && _stopping))
            {
                return;
            }
            catch (SocketException)
            {
                // Out of descriptors (EMFILE) or buffers: the listener is still good, and connections closing will
                // free what it needs. Giving up here would leave a ready instance that accepts nothing.
                _slots.Release();
                try
                {
                    await Task.Delay(AcceptRetryDelay, _time, _stop.Token).ConfigureAwait(false);
                }
                catch (OperationCanceledException)
                {
                    return;
                }

                continue;
            }

            Interlocked.Increment(ref _accepted);
            var task = HandleAsync(client);
            lock (_connections)
            {
                _connections.Add(task);
            }

            _ = task.ContinueWith(t =>
            {
                lock (_connections)
                {
                    _connections.Remove(t);
                }

                _slots.Release();
            }, TaskScheduler.Default);
        }
    }

    private async Task HandleAsync(Socket client)
    {
        using var _ = client;

        // The TLS handshake and request/response exchanges are small writes answered by the peer: with Nagle on, each
        // waited for the peer's delayed ACK (~40 ms per new connection, measured by the gateway benchmark).
        client.NoDelay = true;
        await using var tls = new SslStream(new NetworkStream(client, ownsSocket: false));
        try
        {
            // On the injected clock, as the idle timeout is (CancelAfter would use the real one).
            using var handshakeTimer = new CancellationTokenSource(HandshakeTimeout, _time);
            using var handshake = CancellationTokenSource.CreateLinkedTokenSource(_stop.Token, handshakeTimer.Token);
            await tls.AuthenticateAsServerAsync(new SslServerAuthenticationOptions { ServerCertificateContext = _context }, handshake.Token).ConfigureAwait(false);

            // Held, not forwarded, until the app's ownership of its endpoint is confirmed; refused (the terminator
            // stopping before that) means whatever listens there may be a squatter, so the client is closed unanswered.
            if (!await _appConfirmed.Task.ConfigureAwait(false))
            {
                return;
            }

            // Only a client that completed the handshake costs a second descriptor.
            using var app = AppSocket(_app);
            await app.ConnectAsync(_app).ConfigureAwait(false);
            await using var plain = new NetworkStream(app, ownsSocket: false);

            // A side that ends cleanly has its half-close forwarded, and the other direction runs on for as long as it
            // moves bytes: a client that sent its request and close_notify still reads a long response to its end. A
            // direction that fails (a reset, a write refused) leaves nothing for the other to carry, so it ends both.
            // Silence both ways for the idle timeout ends the pair too: a slot held by a client that sends nothing is a
            // slot lost.
            using var idle = new Inactivity(_idleTimeout, _time);
            var up = PumpAsync(tls, plain, () => app.Shutdown(SocketShutdown.Send), idle);
            var down = PumpAsync(plain, tls, () => tls.ShutdownAsync().GetAwaiter().GetResult(), idle);
            if (!await (await Task.WhenAny(up, down).ConfigureAwait(false)).ConfigureAwait(false))
            {
                idle.End();
            }

            // No fixed cap on the rest, which would cut a busy direction: the idle timeout (or a failure) bounds it.
            // The wait still ends on that token rather than on the pumps, because a pump can be stuck where no token
            // reaches it (sending close_notify to a peer that reads nothing); leaving closes the sockets under it.
            await Task.WhenAll(up, down).WaitAsync(idle.Token).ConfigureAwait(false);
        }
        catch (Exception e) when (e is IOException or SocketException or OperationCanceledException or System.Security.Authentication.AuthenticationException or ObjectDisposedException)
        {
            // A client that goes away or fails the handshake affects only its own connection.
        }
    }

    /// <summary>A stream socket for <paramref name="app"/>: TCP without Nagle, or a UNIX domain socket (which has none).</summary>
    internal static Socket AppSocket(EndPoint app) => app is UnixDomainSocketEndPoint
        ? new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified)
        : new Socket(app.AddressFamily, SocketType.Stream, ProtocolType.Tcp) { NoDelay = true };

    // Copies until the end of `from`, then forwards the half-close: true. False when the direction failed or timed out.
    private static async Task<bool> PumpAsync(Stream from, Stream to, Action close, Inactivity idle)
    {
        var buffer = ArrayPool<byte>.Shared.Rent(CopyBufferSize);
        try
        {
            int read;
            while ((read = await from.ReadAsync(buffer, idle.Token).ConfigureAwait(false)) > 0)
            {
                idle.Touch();
                await to.WriteAsync(buffer.AsMemory(0, read), idle.Token).ConfigureAwait(false);

                // A write that completes is progress too: a slow reader is not an idle one.
                idle.Touch();
            }

            close();
            return true;
        }
        catch (Exception e) when (e is IOException or SocketException or ObjectDisposedException or InvalidOperationException or OperationCanceledException)
        {
            // The caller ends the other direction too (an idle timeout has ended both already).
            return false;
        }
        finally
        {
            ArrayPool<byte>.Shared.Return(buffer);
        }
    }

    // Cancels Token once no byte has moved either way for the timeout. One timer per connection, re-armed only when it
    // fires (for what is left of the timeout since the last byte), so a busy connection pays a timestamp per read.
    private sealed class Inactivity : IDisposable
    {
        private readonly CancellationTokenSource _expired = new();
        private readonly TimeSpan _timeout;
        private readonly TimeProvider _time;
        private readonly ITimer? _timer;
        private long _last;

        public Inactivity(TimeSpan timeout, TimeProvider time)
        {
            _timeout = timeout;
            _time = time;
            _last = time.GetTimestamp();
            if (timeout != Timeout.InfiniteTimeSpan)
            {
                // Armed only once assigned, so the first callback sees it.
                _timer = time.CreateTimer(_ => Check(), null, Timeout.InfiniteTimeSpan, Timeout.InfiniteTimeSpan);
                _timer.Change(timeout, Timeout.InfiniteTimeSpan);
            }
        }

        public CancellationToken Token => _expired.Token;

        public void Touch() => Volatile.Write(ref _last, _time.GetTimestamp());

        // Ends the connection now, as the timeout would: one direction failed.
        public void End() => _expired.Cancel();

        private void Check()
        {
            try
            {
                var quiet = _time.GetElapsedTime(Volatile.Read(ref _last));
                if (quiet >= _timeout)
                {
                    _expired.Cancel();
                }
                else
                {
                    _timer!.Change(_timeout - quiet, Timeout.InfiniteTimeSpan);
                }
            }
            catch (ObjectDisposedException)
            {
                // The connection ended while the timer fired.
            }
        }

        public void Dispose()
        {
            _timer?.Dispose();
            _expired.Dispose();
        }
    }

    /// <summary>Stops accepting and waits up to <paramref name="drain"/> for open connections.</summary>
    public async Task StopAsync(TimeSpan drain)
    {
        // Connections still held for the app's check end here, unforwarded: the app was never confirmed.
        _appConfirmed.TrySetResult(false);
        _stopping = true;
        _listener.Stop();
        Task[] open;
        lock (_connections)
        {
            open = [.. _connections];
        }

        await Task.WhenAll(open).WaitAsync(drain, _time).ContinueWith(_ => { }, TaskScheduler.Default).ConfigureAwait(false);
        await _stop.CancelAsync().ConfigureAwait(false);
        await _accepting.ConfigureAwait(false);
    }

    /// <inheritdoc />
    public async ValueTask DisposeAsync()
    {
        await StopAsync(TimeSpan.Zero).ConfigureAwait(false);
        _stop.Dispose();
    }
}
