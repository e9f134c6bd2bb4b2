using System.Net;
using System.Net.Security;
using System.Net.Sockets;
using Morphisms.Agent.Identity;

namespace Morphisms.Agent.Tls;

/// <summary>
/// Terminates TLS on the instance port with the attested certificate and pipes plaintext to the app: on loopback TCP,
/// or on a UNIX domain socket where the loopback is not the TEE's own (under Gramine, TCP is the host kernel's).
/// The certificate lives in a volatile field read per handshake, so a rollover reaches new connections at once while
/// open connections keep the certificate they were made with and are never dropped.
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
    private volatile SslStreamCertificateContext _context;
    private volatile bool _stopping;
    private Task _accepting = Task.CompletedTask;

    /// <summary>The most connections open at once.</summary>
    public const int MaxConnections = 1024;

    /// <summary>Creates a terminator for <paramref name="address"/>:<paramref name="port"/> forwarding to <paramref name="appPort"/>.</summary>
    /// <param name="address">The address to listen on.</param>
    /// <param name="port">The port to listen on (0 picks a free one).</param>
    /// <param name="appPort">The app's plaintext port on loopback.</param>
    /// <param name="certificate">The attested serving certificate.</param>
    /// <param name="maxConnections">The most connections open at once (<see cref="MaxConnections"/> unless a test needs fewer).</param>
    public TlsTerminator(string address, int port, int appPort, ServingCertificate certificate, int maxConnections = MaxConnections)
        : this(address, port, new IPEndPoint(IPAddress.Loopback, appPort), certificate, maxConnections)
    {
    }

    /// <summary>Creates a terminator for <paramref name="address"/>:<paramref name="port"/> forwarding to <paramref name="app"/>.</summary>
    /// <param name="address">The address to listen on.</param>
    /// <param name="port">The port to listen on (0 picks a free one).</param>
    /// <param name="app">The app's plaintext endpoint: loopback TCP, or a <see cref="UnixDomainSocketEndPoint"/>.</param>
    /// <param name="certificate">The attested serving certificate.</param>
    /// <param name="maxConnections">The most connections open at once (<see cref="MaxConnections"/> unless a test needs fewer).</param>
    public TlsTerminator(string address, int port, EndPoint app, ServingCertificate certificate, int maxConnections = MaxConnections)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(maxConnections, 1);
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

    /// <summary>Starts accepting.</summary>
    public void Start()
    {
        _listener.Start();
        _accepting = AcceptLoopAsync();
    }

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
                    await Task.Delay(AcceptRetryDelay, _stop.Token).ConfigureAwait(false);
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
            using var handshake = CancellationTokenSource.CreateLinkedTokenSource(_stop.Token);
            handshake.CancelAfter(TimeSpan.FromSeconds(10));
            await tls.AuthenticateAsServerAsync(new SslServerAuthenticationOptions { ServerCertificateContext = _context }, handshake.Token).ConfigureAwait(false);

            // Only a client that completed the handshake costs a second descriptor.
            using var app = AppSocket(_app);
            await app.ConnectAsync(_app).ConfigureAwait(false);
            await using var plain = new NetworkStream(app, ownsSocket: false);

            // Either side closing ends the pair; a half-close is forwarded so request/response bodies finish.
            var up = PumpAsync(tls, plain, () => app.Shutdown(SocketShutdown.Send));
            var down = PumpAsync(plain, tls, () => tls.ShutdownAsync().GetAwaiter().GetResult());
            await Task.WhenAny(up, down).ConfigureAwait(false);
            await Task.WhenAll(up, down).WaitAsync(TimeSpan.FromSeconds(30)).ConfigureAwait(false);
        }
        catch (Exception e) when (e is IOException or SocketException or OperationCanceledException or TimeoutException or System.Security.Authentication.AuthenticationException or ObjectDisposedException)
        {
            // A client that goes away or fails the handshake affects only its own connection.
        }
    }

    /// <summary>A stream socket for <paramref name="app"/>: TCP without Nagle, or a UNIX domain socket (which has none).</summary>
    internal static Socket AppSocket(EndPoint app) => app is UnixDomainSocketEndPoint
        ? new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified)
        : new Socket(app.AddressFamily, SocketType.Stream, ProtocolType.Tcp) { NoDelay = true };

    private static async Task PumpAsync(Stream from, Stream to, Action close)
    {
        try
        {
            await from.CopyToAsync(to).ConfigureAwait(false);
            close();
        }
        catch (Exception e) when (e is IOException or SocketException or ObjectDisposedException or InvalidOperationException)
        {
            // The other direction ends the connection.
        }
    }

    /// <summary>Stops accepting and waits up to <paramref name="drain"/> for open connections.</summary>
    public async Task StopAsync(TimeSpan drain)
    {
        _stopping = true;
        _listener.Stop();
        Task[] open;
        lock (_connections)
        {
            open = [.. _connections];
        }

        await Task.WhenAll(open).WaitAsync(drain).ContinueWith(_ => { }, TaskScheduler.Default).ConfigureAwait(false);
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
