using System.Net;
using System.Net.Sockets;

namespace Morphisms.Serving.Gateway;

/// <summary>
/// The confidential-mode gateway: accepts TCP, reads only the SNI of the TLS ClientHello, and
/// splices the connection's bytes to an instance of the matching revision. It holds no certificate
/// and no key; it never sees plaintext. An unknown host gets a TLS <c>unrecognized_name</c> alert.
/// </summary>
public sealed class SniPassthroughGateway : IAsyncDisposable
{
    // TLS alert record: fatal (2), unrecognized_name (112).
    private static readonly byte[] UnrecognizedNameAlert = [21, 3, 3, 0, 2, 2, 112];

    private readonly SniGatewayOptions _options;
    private readonly IBackendResolver _resolver;
    private readonly RevisionConcurrency _concurrency;
    private readonly IGatewayObserver? _observer;
    private readonly TcpListener _listener;
    private readonly CancellationTokenSource _stopping = new();
    private readonly SemaphoreSlim _slots;
    private Task? _acceptLoop;

    /// <summary>Creates the gateway; call <see cref="Start"/> to listen. <paramref name="observer"/> receives per-connection events for metrics.</summary>
    public SniPassthroughGateway(SniGatewayOptions options, IBackendResolver resolver, RevisionConcurrency concurrency, IGatewayObserver? observer = null)
    {
        _observer = observer;
        _options = options;
        _resolver = resolver;
        _concurrency = concurrency;
        _listener = new TcpListener(options.Listen);
        _slots = new SemaphoreSlim(options.MaxConnections);
    }

    /// <summary>The bound address (after <see cref="Start"/>).</summary>
    public IPEndPoint LocalEndPoint => (IPEndPoint)_listener.LocalEndpoint;

    /// <summary>Connections refused because <see cref="SniGatewayOptions.MaxConnections"/> were busy.</summary>
    public long RefusedForCapacity => Interlocked.Read(ref _refusedForCapacity);

    private long _refusedForCapacity;

    /// <summary>Connections closed because no instance could take them (queue full, timeout, connect failure).</summary>
    public long RefusedForBackend => Interlocked.Read(ref _refusedForBackend);

    private long _refusedForBackend;

    /// <summary>Starts listening and accepting.</summary>
    public void Start()
    {
        _listener.Start();
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

        _stopping.Dispose();
        _slots.Dispose();
    }

    private async Task AcceptLoopAsync(CancellationToken stopping)
    {
        while (!stopping.IsCancellationRequested)
        {
            TcpClient client;
            try
            {
                client = await _listener.AcceptTcpClientAsync(stopping).ConfigureAwait(false);
            }
            catch (Exception e) when (e is OperationCanceledException or ObjectDisposedException or SocketException)
            {
                return;
            }

            if (!_slots.Wait(0))
            {
                Interlocked.Increment(ref _refusedForCapacity);
                client.Dispose();
                continue;
            }

            _ = Task.Run(async () =>
            {
                try
                {
                    await ServeAsync(client, stopping).ConfigureAwait(false);
                }
                finally
                {
                    _slots.Release();
                }
            }, CancellationToken.None);
        }
    }

    private async Task ServeAsync(TcpClient client, CancellationToken stopping)
    {
        using var _ = client;
        var accepted = System.Diagnostics.Stopwatch.GetTimestamp();
        client.NoDelay = true;
        var downstream = client.GetStream();
        var (status, serverName, prefix) = await ReadClientHelloAsync(downstream, stopping).ConfigureAwait(false);
        if (status != ClientHelloStatus.Found || serverName is null)
        {
            if (status == ClientHelloStatus.NoServerName)
            {
                await TrySendAsync(downstream, UnrecognizedNameAlert).ConfigureAwait(false);
            }

            return;
        }

        using var backendTimeout = CancellationTokenSource.CreateLinkedTokenSource(stopping);
        backendTimeout.CancelAfter(_options.BackendTimeout);
        BackendTarget? target;
        using var backend = new TcpClient { NoDelay = true };
        try
        {
            target = await _resolver.ResolveAsync(serverName, backendTimeout.Token).ConfigureAwait(false);
            if (target is null)
            {
                await TrySendAsync(downstream, UnrecognizedNameAlert).ConfigureAwait(false);
                return;
            }

            await backend.ConnectAsync(target.Endpoint, backendTimeout.Token).ConfigureAwait(false);
        }
        catch (Exception e) when (e is OperationCanceledException or SocketException or Activation.ActivatorOverloadedException)
        {
            // No instance in time, or the activator's queue is full: TLS has not started, so closing is all we can say.
            Interlocked.Increment(ref _refusedForBackend);
            _observer?.Refused(serverName, (e as Activation.ActivatorOverloadedException)?.Revision);
            return;
        }

        using var inFlight = _concurrency.Begin(target.Revision);
        _observer?.Forwarded(target);
        var upstream = backend.GetStream();
        await upstream.WriteAsync(prefix, stopping).ConfigureAwait(false);
        var toBackend = PumpAsync(downstream, upstream, backend.Client, null, stopping);
        Action? firstByte = target.Held && _observer is { } observer
            ? () => observer.FirstByte(target, System.Diagnostics.Stopwatch.GetElapsedTime(accepted))
            : null;
        var toClient = PumpAsync(upstream, downstream, client.Client, firstByte, stopping);
        await Task.WhenAll(toBackend, toClient).ConfigureAwait(false);
    }

    private async Task<(ClientHelloStatus Status, string? ServerName, byte[] Prefix)> ReadClientHelloAsync(NetworkStream stream, CancellationToken stopping)
    {
        using var timeout = CancellationTokenSource.CreateLinkedTokenSource(stopping);
        timeout.CancelAfter(_options.ClientHelloTimeout);
        var buffer = new byte[4096];
        var length = 0;
        try
        {
            while (true)
            {
                if (length == buffer.Length)
                {
                    if (buffer.Length >= ClientHelloParser.MaxClientHelloBytes + 5 * 8)
                    {
                        return (ClientHelloStatus.Invalid, null, []);
                    }

                    Array.Resize(ref buffer, buffer.Length * 2);
                }

                var read = await stream.ReadAsync(buffer.AsMemory(length), timeout.Token).ConfigureAwait(false);
                if (read == 0)
                {
                    return (ClientHelloStatus.Invalid, null, []);
                }

                length += read;
                var status = ClientHelloParser.TryReadServerName(buffer.AsSpan(0, length), out var serverName);
                if (status != ClientHelloStatus.NeedMoreData)
                {
                    return (status, serverName, buffer[..length]);
                }
            }
        }
        catch (Exception e) when (e is OperationCanceledException or IOException)
        {
            return (ClientHelloStatus.Invalid, null, []);
        }
    }

    private static async Task PumpAsync(NetworkStream from, NetworkStream to, Socket toSocket, Action? firstByte, CancellationToken stopping)
    {
        try
        {
            if (firstByte is not null)
            {
                // The first bytes back from the instance (its ServerHello) end the cold start the client saw.
                var buffer = new byte[16 * 1024];
                var read = await from.ReadAsync(buffer, stopping).ConfigureAwait(false);
                if (read == 0)
                {
                    return;
                }

                firstByte();
                await to.WriteAsync(buffer.AsMemory(0, read), stopping).ConfigureAwait(false);
            }

            await from.CopyToAsync(to, 16 * 1024, stopping).ConfigureAwait(false);
        }
        catch (Exception e) when (e is IOException or OperationCanceledException or ObjectDisposedException)
        {
            // Either side went away; the other pump ends when its socket closes.
        }
        finally
        {
            try
            {
                toSocket.Shutdown(SocketShutdown.Send); // pass the half-close on, as TLS close_notify expects
            }
            catch (Exception e) when (e is SocketException or ObjectDisposedException)
            {
            }
        }
    }

    private static async Task TrySendAsync(NetworkStream stream, byte[] bytes)
    {
        try
        {
            await stream.WriteAsync(bytes).ConfigureAwait(false);
        }
        catch (Exception e) when (e is IOException or ObjectDisposedException)
        {
        }
    }
}
