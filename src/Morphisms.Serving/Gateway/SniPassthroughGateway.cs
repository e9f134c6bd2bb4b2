using System.Buffers;
using System.Net;
using System.Net.Sockets;

namespace Morphisms.Serving.Gateway;

/// <summary>
/// The confidential-mode gateway: accepts TCP, reads only the SNI of the TLS ClientHello, and
/// splices the connection's bytes to an instance of the matching revision. It holds no certificate
/// and no key; it never sees plaintext. An unknown host gets a TLS <c>unrecognized_name</c> alert.
/// On Linux an epoll + splice(2) relay moves the bytes (see <see cref="SniGatewayOptions.UseSpliceRelay"/>);
/// elsewhere two async copy loops per connection do.
/// </summary>
public sealed class SniPassthroughGateway : IAsyncDisposable
{
    // Per direction per connection, from the shared pool: one TLS record (16 KiB + overhead) mostly fits one receive.
    private const int BufferSize = 16 * 1024;

    // The ClientHello is at most MaxClientHelloBytes split over records with 5-byte headers; the pool rounds up.
    private const int MaxClientHelloBuffer = ClientHelloParser.MaxClientHelloBytes + (5 * 8);

    // A relayed connection holds six descriptors: client, backend and two pipes. The headroom is for the rest of the
    // host: the listener, the relay's epoll, the control API, the instances' output pipes, the KMS.
    private const int DescriptorsPerConnection = 6;
    private const int DescriptorHeadroom = 256;

    private static readonly TimeSpan AcceptRetryDelay = TimeSpan.FromMilliseconds(100);

    // TLS alert record: fatal (2), unrecognized_name (112).
    private static readonly byte[] UnrecognizedNameAlert = [21, 3, 3, 0, 2, 2, 112];

    private readonly SniGatewayOptions _options;
    private readonly IBackendResolver _resolver;
    private readonly RevisionConcurrency _concurrency;
    private readonly IGatewayObserver? _observer;
    private readonly TcpListener _listener;
    private readonly CancellationTokenSource _stopping = new();
    private readonly SemaphoreSlim _slots;
    private readonly Func<TcpListener, CancellationToken, ValueTask<Socket>> _accept;
    private SpliceRelay? _relay;
    private Task? _acceptLoop;

    /// <summary>Creates the gateway; call <see cref="Start"/> to listen. <paramref name="observer"/> receives per-connection events for metrics.</summary>
    public SniPassthroughGateway(SniGatewayOptions options, IBackendResolver resolver, RevisionConcurrency concurrency, IGatewayObserver? observer = null)
        : this(options, resolver, concurrency, observer, static (listener, ct) => listener.AcceptSocketAsync(ct))
    {
    }

    /// <summary>Creates the gateway with <paramref name="accept"/> in place of the listener's own accept (tests make it fail).</summary>
    internal SniPassthroughGateway(SniGatewayOptions options, IBackendResolver resolver, RevisionConcurrency concurrency, IGatewayObserver? observer,
        Func<TcpListener, CancellationToken, ValueTask<Socket>> accept)
    {
        _observer = observer;
        _options = options;
        _resolver = resolver;
        _concurrency = concurrency;
        _accept = accept;
        _listener = new TcpListener(options.Listen);
        MaxConnections = ConnectionLimit(options.MaxConnections, SpliceInterop.OpenFileLimit());
        _slots = new SemaphoreSlim(MaxConnections);
    }

    /// <summary>
    /// Connections served at once: <see cref="SniGatewayOptions.MaxConnections"/>, or fewer when the process's
    /// descriptor limit (RLIMIT_NOFILE) would not hold that many relayed connections besides the host's own descriptors.
    /// </summary>
    public int MaxConnections { get; }

    /// <summary>The bound address (after <see cref="Start"/>).</summary>
    public IPEndPoint LocalEndPoint => (IPEndPoint)_listener.LocalEndpoint;

    /// <summary>Connections refused because <see cref="MaxConnections"/> were busy.</summary>
    public long RefusedForCapacity => Interlocked.Read(ref _refusedForCapacity);

    private long _refusedForCapacity;

    /// <summary>Connections closed because no instance could take them (queue full, timeout, connect failure).</summary>
    public long RefusedForBackend => Interlocked.Read(ref _refusedForBackend);

    private long _refusedForBackend;

    /// <summary>The relay moving established connections, or null when they are copied by async pumps.</summary>
    internal SpliceRelay? Relay => _relay;

    /// <summary>Starts listening and accepting.</summary>
    public void Start()
    {
        _listener.Start();
        if (MaxConnections < _options.MaxConnections)
        {
            _options.Log?.Invoke($"gateway: at most {MaxConnections} connections at once, not {_options.MaxConnections}: the process may open "
                + $"{SpliceInterop.OpenFileLimit()} descriptors (ulimit -n) and a relayed connection holds {DescriptorsPerConnection}");
        }

        if (_options.UseSpliceRelay)
        {
            // Null off Linux or without epoll: the connections then go through the async pumps.
            _relay = SpliceRelay.TryCreate(_options.SpliceRelayThreads > 0 ? _options.SpliceRelayThreads : SpliceRelay.DefaultThreads);
        }

        _acceptLoop = AcceptLoopAsync(_stopping.Token);
    }

    /// <inheritdoc />
    public async ValueTask DisposeAsync()
    {
        await _stopping.CancelAsync();
        _listener.Stop();
        if (_acceptLoop is not null)
        {
            await _acceptLoop.ConfigureAwait(false);
        }

        // After the stop registrations ran: they ended the relayed pairs already. This ends any a connection handed
        // over meanwhile and stops the relay threads.
        _relay?.Dispose();
        _stopping.Dispose();
        _slots.Dispose();
    }

    /// <summary>
    /// <paramref name="configured"/>, lowered to what <paramref name="openFileLimit"/> descriptors hold: past that,
    /// accepts fail with EMFILE instead of being refused, and the host's own descriptors run out with them.
    /// </summary>
    internal static int ConnectionLimit(int configured, long? openFileLimit) =>
        openFileLimit is { } limit
            ? (int)Math.Min(configured, Math.Max(1, (limit - DescriptorHeadroom) / DescriptorsPerConnection))
            : configured;

    private async Task AcceptLoopAsync(CancellationToken stopping)
    {
        var failures = 0;
        while (!stopping.IsCancellationRequested)
        {
            Socket client;
            try
            {
                client = await _accept(_listener, stopping).ConfigureAwait(false);
            }
            catch (Exception e) when (e is OperationCanceledException or ObjectDisposedException || (e is SocketException or InvalidOperationException && stopping.IsCancellationRequested))
            {
                return;
            }
            catch (SocketException e)
            {
                // Out of descriptors (EMFILE, ENFILE) or buffers: the listener is still good, and connections closing
                // free what it needs. Giving up here would leave clients connecting into the backlog and hanging until
                // the host restarts. The pause keeps a backlog accept keeps failing on from spinning the loop.
                if (failures++ == 0)
                {
                    _options.Log?.Invoke($"gateway: accepting failed ({e.SocketErrorCode}: {e.Message}); retrying every {AcceptRetryDelay.TotalMilliseconds:0} ms");
                }

                try
                {
                    await Task.Delay(AcceptRetryDelay, _options.Time, stopping).ConfigureAwait(false);
                }
                catch (OperationCanceledException)
                {
                    return;
                }

                continue;
            }

            if (failures > 0)
            {
                _options.Log?.Invoke($"gateway: accepting again after {failures} failed accepts");
                failures = 0;
            }

            if (!_slots.Wait(0))
            {
                Interlocked.Increment(ref _refusedForCapacity);
                client.Dispose();
                continue;
            }

            // No Task.Run hop: ServeAsync runs inline only until its first pending receive or the backend connect, so
            // the accept loop waits at most for one ClientHello parse (bounded by MaxClientHelloBuffer).
            _ = ServeAndReleaseAsync(client, stopping);
        }
    }

    private async Task ServeAndReleaseAsync(Socket client, CancellationToken stopping)
    {
        try
        {
            await ServeAsync(client, stopping).ConfigureAwait(false);
        }
        catch (Exception e) when (e is SocketException or ObjectDisposedException or OperationCanceledException)
        {
            // The connection is gone; nothing to tell anyone.
        }
        finally
        {
            _slots.Release();
        }
    }

    private async Task ServeAsync(Socket client, CancellationToken stopping)
    {
        using var _ = client;
        var accepted = System.Diagnostics.Stopwatch.GetTimestamp();
        client.NoDelay = true;

        // One pooled buffer per direction for the connection's whole life; the ClientHello is read into the
        // upstream one and forwarded from it in a single send, never copied.
        byte[]? toBackendBuffer = ArrayPool<byte>.Shared.Rent(BufferSize);
        var toClientBuffer = (byte[]?)null;
        try
        {
            (var status, var serverName, toBackendBuffer, var helloLength) = await ReadClientHelloAsync(client, toBackendBuffer, stopping).ConfigureAwait(false);
            if (status != ClientHelloStatus.Found || serverName is null)
            {
                if (status == ClientHelloStatus.NoServerName)
                {
                    await TrySendAsync(client, UnrecognizedNameAlert).ConfigureAwait(false);
                }

                return;
            }

            // On the options' clock (CancelAfter would use the real one), linked to the gateway's stop.
            using var backendTimer = new CancellationTokenSource(_options.BackendTimeout, _options.Time);
            using var backendTimeout = CancellationTokenSource.CreateLinkedTokenSource(stopping, backendTimer.Token);
            BackendTarget? target;
            Socket? connecting = null;
            List<IPEndPoint>? refused = null;
            try
            {
                while (true)
                {
                    target = await (refused is null
                        ? _resolver.ResolveAsync(serverName, backendTimeout.Token)
                        : _resolver.ResolveAsync(serverName, refused, backendTimeout.Token)).ConfigureAwait(false);
                    if (target is null)
                    {
                        await TrySendAsync(client, UnrecognizedNameAlert).ConfigureAwait(false);
                        return;
                    }

                    if (refused?.Contains(target.Endpoint) == true)
                    {
                        // A resolver that cannot leave it out has nothing else.
                        throw new SocketException((int)SocketError.ConnectionRefused);
                    }

                    connecting = new Socket(target.Endpoint.AddressFamily, SocketType.Stream, ProtocolType.Tcp) { NoDelay = true };
                    try
                    {
                        await (_relay is { } relay
                            ? relay.ConnectAsync(connecting, target.Endpoint, backendTimeout.Token)
                            : connecting.ConnectAsync(target.Endpoint, backendTimeout.Token)).ConfigureAwait(false);
                        break;
                    }
                    catch (SocketException e) when (e.SocketErrorCode == SocketError.ConnectionRefused && !backendTimeout.IsCancellationRequested)
                    {
                        // An instance stopping refuses at TCP before it drains, so that its clients go elsewhere, and one
                        // that died does until the runtime notices: nothing was sent, so another instance can take the
                        // connection, within the same backend timeout.
                        connecting.Dispose();
                        connecting = null;
                        (refused ??= []).Add(target.Endpoint);
                    }
                }
            }
            catch (Exception e) when (e is OperationCanceledException or SocketException or ObjectDisposedException or Activation.ActivatorOverloadedException)
            {
                // No instance in time, or the activator's queue is full: TLS has not started, so closing is all we can say.
                Interlocked.Increment(ref _refusedForBackend);
                _observer?.Refused(serverName, (e as Activation.ActivatorOverloadedException)?.Revision);
                connecting?.Dispose();
                return;
            }

            using var backend = connecting;

            // Counted while it plausibly serves a request, not for its whole life: a pooled keep-alive connection would
            // otherwise keep the revision from scaling to zero. Marked on every read, in both directions.
            using var activity = _concurrency.BeginConnection(target.Revision, _options.Time);
            _observer?.Forwarded(target);

            // One registration per connection instead of a cancellable token on every receive and send: stopping
            // the gateway closes both sockets, which ends both pumps (or the relayed pair).
            var connection = new ConnectionStop(client, backend);
            using var stop = stopping.UnsafeRegister(static state => ((ConnectionStop)state!).Stop(), connection);

            if (!await TryForwardHelloAsync(backend, toBackendBuffer.AsMemory(0, helloLength)).ConfigureAwait(false))
            {
                return;
            }

            var observer = target.Held ? _observer : null;
            if (_relay?.TryStart(client, backend, observer is null ? null : at => observer.FirstByte(target, System.Diagnostics.Stopwatch.GetElapsedTime(accepted, at)), activity) is { } relayed)
            {
                // Nothing is pending on either socket now (the hello's send completed), as the relay requires.
                ArrayPool<byte>.Shared.Return(toBackendBuffer);
                toBackendBuffer = null;
                connection.Relayed = relayed;
                if (stopping.IsCancellationRequested)
                {
                    relayed.Abort(); // the stop may have run before Relayed was set
                }

                await relayed.Completion.ConfigureAwait(false);
                return;
            }

            toClientBuffer = ArrayPool<byte>.Shared.Rent(BufferSize);
            Action? firstByte = observer is null
                ? null
                : () => observer.FirstByte(target, System.Diagnostics.Stopwatch.GetElapsedTime(accepted));
            var toBackend = PumpAsync(client, backend, toBackendBuffer, null, activity, fromClient: true);
            var toClient = PumpAsync(backend, client, toClientBuffer, firstByte, activity, fromClient: false);
            await Task.WhenAll(toBackend, toClient).ConfigureAwait(false);
        }
        finally
        {
            if (toBackendBuffer is not null)
            {
                ArrayPool<byte>.Shared.Return(toBackendBuffer);
            }

            if (toClientBuffer is not null)
            {
                ArrayPool<byte>.Shared.Return(toClientBuffer);
            }
        }
    }

    /// <summary>
    /// Reads until the ClientHello's server name is known. Returns the buffer holding the bytes read (a larger rented
    /// one, with the original returned to the pool, when the ClientHello outgrew it) and their length.
    /// </summary>
    private async Task<(ClientHelloStatus Status, string? ServerName, byte[] Buffer, int Length)> ReadClientHelloAsync(Socket client, byte[] buffer, CancellationToken stopping)
    {
        using var timer = new CancellationTokenSource(_options.ClientHelloTimeout, _options.Time);
        using var timeout = CancellationTokenSource.CreateLinkedTokenSource(stopping, timer.Token);
        var length = 0;
        var scan = default(ClientHelloScan);
        try
        {
            while (true)
            {
                if (length == buffer.Length)
                {
                    if (buffer.Length >= MaxClientHelloBuffer)
                    {
                        return (ClientHelloStatus.Invalid, null, buffer, 0);
                    }

                    var larger = ArrayPool<byte>.Shared.Rent(buffer.Length * 2);
                    buffer.AsSpan(0, length).CopyTo(larger);
                    ArrayPool<byte>.Shared.Return(buffer);
                    buffer = larger;
                }

                // With the relay, the ClientHello (as the connect and the hello's forwarding) waits on a relay thread: see SpliceRelay.
                var read = await (_relay is { } relay
                    ? relay.ReceiveAsync(client, buffer.AsMemory(length), timeout.Token)
                    : client.ReceiveAsync(buffer.AsMemory(length), SocketFlags.None, timeout.Token)).ConfigureAwait(false);
                if (read == 0)
                {
                    return (ClientHelloStatus.Invalid, null, buffer, 0);
                }

                length += read;
                // Resumed where the last call stopped: nothing is parsed or copied until the records holding the hello are whole.
                var status = ClientHelloParser.TryReadServerName(buffer.AsSpan(0, length), ref scan, out var serverName);
                if (status != ClientHelloStatus.NeedMoreData)
                {
                    return (status, serverName, buffer, length);
                }
            }
        }
        catch (Exception e) when (e is OperationCanceledException or SocketException or ObjectDisposedException)
        {
            return (ClientHelloStatus.Invalid, null, buffer, 0);
        }
    }

    /// <summary>
    /// Copies one direction until its sender half-closes or either side fails, then half-closes the receiver, as TLS
    /// close_notify expects. Plain socket calls without a cancellation token: the per-connection registration closes
    /// the sockets when the gateway stops. Each read is marked on <paramref name="activity"/> before it is passed on.
    /// </summary>
    private static async Task PumpAsync(Socket from, Socket to, byte[] buffer, Action? firstByte, PassthroughConnection activity, bool fromClient)
    {
        try
        {
            while (true)
            {
                var read = await from.ReceiveAsync(buffer, SocketFlags.None).ConfigureAwait(false);
                if (read == 0)
                {
                    break;
                }

                if (fromClient)
                {
                    activity.ClientSent();
                }
                else
                {
                    activity.InstanceSent();
                }

                if (firstByte is not null)
                {
                    // The first bytes back from the instance (its ServerHello) end the cold start the client saw.
                    firstByte();
                    firstByte = null;
                }

                if (!await TrySendAllAsync(to, buffer.AsMemory(0, read)).ConfigureAwait(false))
                {
                    break;
                }
            }
        }
        catch (Exception e) when (e is SocketException or ObjectDisposedException)
        {
            // Either side went away; the other pump ends when its socket closes.
        }
        finally
        {
            try
            {
                to.Shutdown(SocketShutdown.Send); // pass the half-close on
            }
            catch (Exception e) when (e is SocketException or ObjectDisposedException)
            {
            }
        }
    }

    /// <summary>
    /// Sends the ClientHello (and whatever came with it) to the backend. No token: the stop registration closes the
    /// socket, which ends a wait for writability on the relay as it ends .NET's send.
    /// </summary>
    private async ValueTask<bool> TryForwardHelloAsync(Socket backend, ReadOnlyMemory<byte> hello)
    {
        if (_relay is null)
        {
            return await TrySendAllAsync(backend, hello).ConfigureAwait(false);
        }

        try
        {
            await _relay.SendAllAsync(backend, hello, CancellationToken.None).ConfigureAwait(false);
            return true;
        }
        catch (Exception e) when (e is SocketException or ObjectDisposedException)
        {
            return false;
        }
    }

    private static async ValueTask<bool> TrySendAllAsync(Socket socket, ReadOnlyMemory<byte> bytes)
    {
        try
        {
            while (!bytes.IsEmpty)
            {
                var sent = await socket.SendAsync(bytes, SocketFlags.None).ConfigureAwait(false);
                bytes = bytes[sent..];
            }

            return true;
        }
        catch (Exception e) when (e is SocketException or ObjectDisposedException)
        {
            return false;
        }
    }

    private static async Task TrySendAsync(Socket socket, byte[] bytes) => await TrySendAllAsync(socket, bytes).ConfigureAwait(false);

    /// <summary>What stopping the gateway does to one connection.</summary>
    private sealed class ConnectionStop(Socket client, Socket backend)
    {
        private volatile RelayedPair? _relayed;

        public RelayedPair? Relayed
        {
            set => _relayed = value;
        }

        public void Stop()
        {
            // Abort at the relay first: disposing a socket whose handle the relay still references waits until the
            // relay lets go. The dispose's abortive disconnect wakes the relay too, but the abort does not depend
            // on which readiness the relay happens to be waiting for.
            _relayed?.Abort();
            client.Dispose();
            backend.Dispose();
        }
    }
}
