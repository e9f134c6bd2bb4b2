using System.Diagnostics;
using System.Net;
using System.Net.Sockets;
using System.Security.Cryptography;
using Morphisms.Serving.Gateway;
using Xunit.Abstractions;

namespace Morphisms.Serving.Tests.Gateway;

/// <summary>
/// The epoll + splice(2) relay behind the gateway, and the async pumps it falls back to: byte-exact transfer with
/// half-closes, back-pressure, resets, stop, and descriptor hygiene.
/// </summary>
public class SpliceRelayTests(ITestOutputHelper output)
{
    private const string Host = "relay.fn.morphisms.local";
    private const string Revision = "relay-00001";

    private sealed class OneRoute(IPEndPoint backend, bool held = false) : IBackendResolver
    {
        public ValueTask<BackendTarget?> ResolveAsync(string serverName, CancellationToken cancellationToken) =>
            ValueTask.FromResult(serverName == Host ? new BackendTarget(Revision, backend, held) : null);
    }

    private sealed class FirstByteRecorder : IGatewayObserver
    {
        private readonly TaskCompletionSource<TimeSpan> _firstByte = new(TaskCreationOptions.RunContinuationsAsynchronously);
        private int _calls;

        public Task<TimeSpan> FirstByte => _firstByte.Task;

        public int Calls => Volatile.Read(ref _calls);

        public void Forwarded(BackendTarget target)
        {
        }

        public void Refused(string host, string? revision)
        {
        }

        void IGatewayObserver.FirstByte(BackendTarget target, TimeSpan elapsed)
        {
            Interlocked.Increment(ref _calls);
            _firstByte.TrySetResult(elapsed);
        }
    }

    [Fact]
    public async Task The_relay_is_the_default_on_linux_and_can_be_turned_off()
    {
        var concurrency = new RevisionConcurrency();
        await using var relayed = new SniPassthroughGateway(new SniGatewayOptions(), new OneRoute(new IPEndPoint(IPAddress.Loopback, 1)), concurrency);
        await using var pumped = new SniPassthroughGateway(new SniGatewayOptions { UseSpliceRelay = false }, new OneRoute(new IPEndPoint(IPAddress.Loopback, 1)), concurrency);
        relayed.Start();
        pumped.Start();
        Assert.NotNull(relayed.Relay);
        Assert.Equal(SpliceRelay.DefaultThreads, relayed.Relay.Threads);
        Assert.Null(pumped.Relay);
    }

    [Theory]
    [InlineData(true)]
    [InlineData(false)]
    public async Task Megabytes_pass_byte_exact_both_ways_with_half_closes_in_both_directions(bool relay)
    {
        var hello = await TlsTestPeers.CaptureClientHelloAsync(Host);
        var upload = RandomNumberGenerator.GetBytes((3 * 1024 * 1024) + 17);
        var download = RandomNumberGenerator.GetBytes((3 * 1024 * 1024) + 5);
        using var listener = Listen();
        var concurrency = new RevisionConcurrency();
        await using var gateway = Start(listener, relay, concurrency);

        // The backend sends the download while it reads the upload, and half-closes only once the client's
        // half-close reached it: each end of stream must cross the gateway on its own, the first one while the
        // other direction is still open.
        var backendDone = Task.Run(async () =>
        {
            using var socket = await listener.AcceptSocketAsync();
            var sending = socket.SendAsync(download);
            var received = await SocketTestIo.ReadToEndAsync(socket);
            await sending;
            socket.Shutdown(SocketShutdown.Send);
            return received;
        });

        using var client = await ConnectAsync(gateway);
        var reading = SocketTestIo.ReadToEndAsync(client);
        await client.SendAsync(hello);
        await client.SendAsync(upload);
        client.Shutdown(SocketShutdown.Send);

        var downloaded = await reading.WaitAsync(TimeSpan.FromSeconds(30));
        var uploaded = await backendDone.WaitAsync(TimeSpan.FromSeconds(30));
        Assert.True(uploaded.AsSpan().SequenceEqual([.. hello, .. upload]), "the upload reached the backend unchanged");
        Assert.True(downloaded.AsSpan().SequenceEqual(download), "the download reached the client unchanged");
        await Eventually.True(() => concurrency.Current(Revision) == 0, "in-flight count back to zero");
        Assert.Equal(relay ? 1 : 0, gateway.Relay?.Started ?? 0);
        await Eventually.True(() => (gateway.Relay?.Active ?? 0) == 0, "the relay let go of the pair");
    }

    /// <summary>
    /// The autoscaler's signal in passthrough mode: a connection counts while the client sent last (a request
    /// outstanding, however long the instance computes) or bytes moved within the last second; a keep-alive connection
    /// idle after a response does not, or pooled connections kept a revision from ever scaling to zero. The clock is
    /// fake: every read is marked before the gateway passes it on, so once the peer has the bytes, the mark is there.
    /// </summary>
    [Theory]
    [InlineData(true)]
    [InlineData(false)]
    public async Task A_connection_counts_while_a_request_is_outstanding_not_while_it_idles_after_a_response(bool relay)
    {
        var hello = await TlsTestPeers.CaptureClientHelloAsync(Host);
        using var listener = Listen();
        var time = new Microsoft.Extensions.Time.Testing.FakeTimeProvider();
        var concurrency = new RevisionConcurrency();
        await using var gateway = new SniPassthroughGateway(new SniGatewayOptions { UseSpliceRelay = relay, Time = time },
            new OneRoute((IPEndPoint)listener.LocalEndpoint), concurrency);
        gateway.Start();
        Assert.Equal(relay, gateway.Relay is not null);

        using var client = await ConnectAsync(gateway);
        await client.SendAsync(hello);
        using var backend = await listener.AcceptSocketAsync().WaitAsync(TimeSpan.FromSeconds(10));
        Assert.Equal(hello, await ReadExactlyAsync(backend, hello.Length));
        Assert.Equal(1, concurrency.Current(Revision));

        // The handshake's answer, then a minute with the instance's bytes last: an idle pooled connection.
        time.Advance(TimeSpan.FromMilliseconds(10));
        await backend.SendAsync("server hello"u8.ToArray());
        await ReadExactlyAsync(client, 12);
        Assert.Equal(1, concurrency.Current(Revision));
        time.Advance(TimeSpan.FromMilliseconds(999));
        Assert.Equal(1, concurrency.Current(Revision));
        time.Advance(TimeSpan.FromMilliseconds(2));
        Assert.Equal(0, concurrency.Current(Revision));
        time.Advance(TimeSpan.FromMinutes(1));
        Assert.Equal(0, concurrency.Current(Revision));

        // A request the instance takes a minute to answer, with no byte moving meanwhile.
        await client.SendAsync("request"u8.ToArray());
        await ReadExactlyAsync(backend, 7);
        time.Advance(TimeSpan.FromMinutes(1));
        Assert.Equal(1, concurrency.Current(Revision));

        time.Advance(TimeSpan.FromMilliseconds(10));
        await backend.SendAsync("response"u8.ToArray());
        await ReadExactlyAsync(client, 8);
        Assert.Equal(1, concurrency.Current(Revision));
        time.Advance(TimeSpan.FromSeconds(2));
        Assert.Equal(0, concurrency.Current(Revision));

        // Another connection serving meanwhile counts on its own.
        using var busy = await ConnectAsync(gateway);
        await busy.SendAsync(hello);
        using var busyBackend = await listener.AcceptSocketAsync().WaitAsync(TimeSpan.FromSeconds(10));
        Assert.Equal(hello, await ReadExactlyAsync(busyBackend, hello.Length));
        time.Advance(TimeSpan.FromSeconds(30));
        Assert.Equal(1, concurrency.Current(Revision));

        foreach (var socket in new[] { client, busy, backend, busyBackend })
        {
            socket.Dispose();
        }

        await Eventually.True(() => concurrency.Current(Revision) == 0, "both connections gone");
    }

    [Fact]
    public async Task The_sockets_of_a_relayed_pair_are_watched_by_the_relay_alone()
    {
        // The point of the relay: no wake-up of .NET's epoll thread and no thread-pool item per relayed chunk. That
        // holds only if the gateway's two sockets never entered .NET's epoll, so the ClientHello, the connect and
        // the hello's forwarding must not have used .NET's async socket calls.
        var hello = await TlsTestPeers.CaptureClientHelloAsync(Host);
        using var listener = Listen();
        await using var gateway = Start(listener, relay: true, new RevisionConcurrency());
        using var client = await ConnectAsync(gateway);
        await Task.Delay(100); // the gateway's first read of the ClientHello finds nothing and must wait
        await client.SendAsync(hello);
        using var backend = await listener.AcceptSocketAsync().WaitAsync(TimeSpan.FromSeconds(10));
        Assert.Equal(hello, await ReadExactlyAsync(backend, hello.Length));
        await Eventually.True(() => gateway.Relay!.Active == 1, "the pair is at the relay");
        await backend.SendAsync("server hello"u8.ToArray());
        Assert.Equal("server hello"u8.ToArray(), await ReadExactlyAsync(client, 12));

        var relayEpolls = gateway.Relay!.EpollDescriptors.ToHashSet();
        var relayed = relayEpolls.SelectMany(WatchedBy).ToHashSet();
        Assert.True(relayed.Count >= 3, $"the relay watches its eventfd and both sockets ({string.Join(", ", relayed)})");
        foreach (var epoll in EpollDescriptors().Where(e => !relayEpolls.Contains(e)))
        {
            var overlap = WatchedBy(epoll).Intersect(relayed).ToList();
            Assert.True(overlap.Count == 0, $"epoll {epoll} also watches {string.Join(", ", overlap)}");
        }

        static IEnumerable<int> EpollDescriptors() =>
            Directory.GetFiles("/proc/self/fd")
                .Select(path => (Path: path, Target: TryReadLink(path)))
                .Where(fd => fd.Target == "anon_inode:[eventpoll]")
                .Select(fd => int.Parse(Path.GetFileName(fd.Path), System.Globalization.CultureInfo.InvariantCulture));

        static string? TryReadLink(string path)
        {
            try
            {
                return new FileInfo(path).LinkTarget;
            }
            catch (IOException)
            {
                return null; // closed meanwhile
            }
        }

        // Each registration is a line "tfd: <fd> events: ..." in the epoll's fdinfo.
        static IEnumerable<int> WatchedBy(int epoll)
        {
            string[] lines;
            try
            {
                lines = File.ReadAllLines($"/proc/self/fdinfo/{epoll}");
            }
            catch (IOException)
            {
                return [];
            }

            return lines.Where(l => l.StartsWith("tfd:", StringComparison.Ordinal))
                .Select(l => int.Parse(l.Split(' ', StringSplitOptions.RemoveEmptyEntries)[1], System.Globalization.CultureInfo.InvariantCulture));
        }
    }

    [Theory]
    [InlineData(true)]
    [InlineData(false)]
    public async Task A_refused_backend_connect_closes_the_client_and_is_counted(bool relay)
    {
        var hello = await TlsTestPeers.CaptureClientHelloAsync(Host);
        IPEndPoint closedPort;
        using (var listener = Listen())
        {
            closedPort = (IPEndPoint)listener.LocalEndpoint;
        }

        await using var gateway = new SniPassthroughGateway(new SniGatewayOptions { UseSpliceRelay = relay }, new OneRoute(closedPort), new RevisionConcurrency());
        gateway.Start();
        using var client = await ConnectAsync(gateway);
        await client.SendAsync(hello);
        await DrainUntilClosedAsync(client).WaitAsync(TimeSpan.FromSeconds(10));
        Assert.Equal(1, gateway.RefusedForBackend);
        Assert.Equal(0, gateway.Relay?.Started ?? 0);
    }

    [Fact]
    public async Task A_held_connection_reports_its_first_backend_byte_once_through_the_relay()
    {
        var hello = await TlsTestPeers.CaptureClientHelloAsync(Host);
        using var listener = Listen();
        var observer = new FirstByteRecorder();
        await using var gateway = new SniPassthroughGateway(new SniGatewayOptions(), new OneRoute((IPEndPoint)listener.LocalEndpoint, held: true), new RevisionConcurrency(), observer);
        gateway.Start();

        using var client = await ConnectAsync(gateway);
        await client.SendAsync(hello);
        using var backend = await listener.AcceptSocketAsync().WaitAsync(TimeSpan.FromSeconds(10));
        await Task.Delay(200);
        Assert.False(observer.FirstByte.IsCompleted, "no byte came back yet");

        await backend.SendAsync("server hello"u8.ToArray());
        await backend.SendAsync("more"u8.ToArray());
        var elapsed = await observer.FirstByte.WaitAsync(TimeSpan.FromSeconds(10));
        Assert.True(elapsed >= TimeSpan.FromMilliseconds(150), $"elapsed {elapsed} counts from the accept");
        backend.Shutdown(SocketShutdown.Both);
        client.Shutdown(SocketShutdown.Send);
        Assert.Equal("server hellomore"u8.ToArray(), await SocketTestIo.ReadToEndAsync(client).WaitAsync(TimeSpan.FromSeconds(10)));
        Assert.Equal(1, gateway.Relay!.Started);
        Assert.Equal(1, observer.Calls);
    }

    [Theory]
    [InlineData(true, true)]
    [InlineData(true, false)]
    [InlineData(false, true)]
    [InlineData(false, false)]
    public async Task A_receiver_that_stops_reading_stalls_the_sender_and_the_data_resumes_intact(bool relay, bool toClient)
    {
        // Far more than every socket buffer on the way can hold (tcp_rmem's maximum here is 32 MiB): a gateway that
        // buffered without bound would take it all.
        const long Total = 160L * 1024 * 1024;
        const long Bound = 64L * 1024 * 1024;
        var hello = await TlsTestPeers.CaptureClientHelloAsync(Host);
        var pattern = RandomNumberGenerator.GetBytes((1024 * 1024) + 7);
        using var listener = Listen();
        var concurrency = new RevisionConcurrency();
        await using var gateway = Start(listener, relay, concurrency);

        using var client = await ConnectAsync(gateway);
        await client.SendAsync(hello);
        using var backend = await listener.AcceptSocketAsync().WaitAsync(TimeSpan.FromSeconds(10));
        Assert.Equal(hello, await ReadExactlyAsync(backend, hello.Length));
        var (sender, receiver) = toClient ? (backend, client) : (client, backend);

        var stalled = new TaskCompletionSource<long>(TaskCreationOptions.RunContinuationsAsynchronously);
        var sending = Task.Run(() => FloodAsync(sender, pattern, Total, stalled));
        var stalledAt = await stalled.Task.WaitAsync(TimeSpan.FromSeconds(60));
        output.WriteLine($"the sender stalled after {stalledAt} bytes");
        Assert.True(stalledAt < Bound, $"the sender stalled only after {stalledAt} bytes");

        // Stalled, the relay waits for writability without spinning.
        var relayCpu = RelayThreadsCpu();
        await Task.Delay(500);
        Assert.True(RelayThreadsCpu() - relayCpu < TimeSpan.FromMilliseconds(250), "the relay threads stay idle while the receiver does not read");

        var received = await ReadAndVerifyAsync(receiver, pattern).WaitAsync(TimeSpan.FromSeconds(60));
        await sending.WaitAsync(TimeSpan.FromSeconds(60));
        Assert.Equal(Total, received);
        receiver.Shutdown(SocketShutdown.Send); // the other direction's end: the pair is over
        await Eventually.True(() => concurrency.Current(Revision) == 0, "in-flight count back to zero");
    }

    [Theory]
    [InlineData(true, true)]
    [InlineData(true, false)]
    [InlineData(false, true)]
    [InlineData(false, false)]
    public async Task A_peer_resetting_mid_stream_ends_the_relayed_pair(bool relay, bool clientResets)
    {
        var hello = await TlsTestPeers.CaptureClientHelloAsync(Host);
        using var listener = Listen();
        var concurrency = new RevisionConcurrency();
        await using var gateway = Start(listener, relay, concurrency);

        var client = await ConnectAsync(gateway);
        await client.SendAsync(hello);
        var backend = await listener.AcceptSocketAsync().WaitAsync(TimeSpan.FromSeconds(10));
        try
        {
            Assert.Equal(hello, await ReadExactlyAsync(backend, hello.Length));
            Assert.Equal(1, concurrency.Current(Revision));

            // Both directions busy: each side streams to the other and reads a little of what comes back.
            using var streaming = new CancellationTokenSource();
            var chunk = RandomNumberGenerator.GetBytes(64 * 1024);
            var toBackend = KeepSendingAsync(client, chunk, streaming.Token);
            var toClient = KeepSendingAsync(backend, chunk, streaming.Token);
            await ReadExactlyAsync(client, 256 * 1024);
            await ReadExactlyAsync(backend, 256 * 1024);

            var (resetting, survivor) = clientResets ? (client, backend) : (backend, client);
            resetting.LingerState = new LingerOption(true, 0);
            resetting.Close(); // RST

            // The survivor sees its connection end (FIN or reset) after at most what was in flight.
            await DrainUntilClosedAsync(survivor).WaitAsync(TimeSpan.FromSeconds(10));
            await Eventually.True(() => concurrency.Current(Revision) == 0, "in-flight count back to zero");
            await Eventually.True(() => (gateway.Relay?.Active ?? 0) == 0, "the relay let go of the pair");
            await streaming.CancelAsync();
            await Task.WhenAll(toBackend, toClient).WaitAsync(TimeSpan.FromSeconds(10));
        }
        finally
        {
            client.Dispose();
            backend.Dispose();
        }
    }

    public enum RelayState
    {
        /// <summary>Both sockets wait for bytes.</summary>
        Idle,

        /// <summary>The client half-closed: its socket waits for nothing (parked).</summary>
        ClientHalfClosed,

        /// <summary>The client stopped reading: the backend's socket is parked behind a full pipe.</summary>
        ClientNotReading,
    }

    [Theory]
    [InlineData(RelayState.Idle)]
    [InlineData(RelayState.ClientHalfClosed)]
    [InlineData(RelayState.ClientNotReading)]
    public async Task Disposing_the_gateway_ends_relayed_connections_promptly_whatever_they_wait_for(RelayState state)
    {
        var hello = await TlsTestPeers.CaptureClientHelloAsync(Host);
        using var listener = Listen();
        var concurrency = new RevisionConcurrency();
        var gateway = Start(listener, relay: true, concurrency);
        using var client = await ConnectAsync(gateway);
        client.ReceiveBufferSize = 64 * 1024;
        await client.SendAsync(hello);
        using var backend = await listener.AcceptSocketAsync().WaitAsync(TimeSpan.FromSeconds(10));
        Assert.Equal(hello, await ReadExactlyAsync(backend, hello.Length));
        Task flooding = Task.CompletedTask;
        using var stopFlooding = new CancellationTokenSource();
        switch (state)
        {
            case RelayState.ClientHalfClosed:
                client.Shutdown(SocketShutdown.Send);
                Assert.Equal(0, await backend.ReceiveAsync(new byte[1], SocketFlags.None).WaitAsync(TimeSpan.FromSeconds(10)));
                break;
            case RelayState.ClientNotReading:
                var stalled = new TaskCompletionSource<long>(TaskCreationOptions.RunContinuationsAsynchronously);
                flooding = FloodAsync(backend, RandomNumberGenerator.GetBytes(64 * 1024), long.MaxValue, stalled, stopFlooding.Token);
                await stalled.Task.WaitAsync(TimeSpan.FromSeconds(60));
                break;
        }

        await Eventually.True(() => gateway.Relay!.Active == 1, "the pair is at the relay");
        // A pair the stop missed would hold it forever (the relay's epoll waits without a timeout), and one ended only
        // by the backend timeout after 30 s: a bound of 10 s catches both and leaves a loaded machine room.
        var stopwatch = Stopwatch.StartNew();
        await gateway.DisposeAsync().AsTask().WaitAsync(TimeSpan.FromSeconds(20));
        Assert.True(stopwatch.Elapsed < TimeSpan.FromSeconds(10), $"the gateway took {stopwatch.Elapsed} to stop");
        Assert.Equal(0, gateway.Relay!.Active);

        // The client's connection ends (FIN, or a reset since the gateway closes with bytes unread).
        await DrainUntilClosedAsync(client).WaitAsync(TimeSpan.FromSeconds(10));
        await Eventually.True(() => concurrency.Current(Revision) == 0, "in-flight count back to zero");
        await stopFlooding.CancelAsync();
        await flooding.ContinueWith(_ => { }, TaskScheduler.Default).WaitAsync(TimeSpan.FromSeconds(10));
    }

    [Fact]
    public async Task Two_hundred_connections_in_sequence_leave_no_descriptors_behind()
    {
        var hello = await TlsTestPeers.CaptureClientHelloAsync(Host);
        using var listener = Listen();
        var concurrency = new RevisionConcurrency();
        await using var gateway = Start(listener, relay: true, concurrency);
        using var stop = new CancellationTokenSource();
        var echo = EchoEachAsync(listener, stop.Token);

        await OneAsync(); // warm-up: thread-pool threads, the relay's slot table, lazily opened runtime files
        await Eventually.True(() => concurrency.Current(Revision) == 0, "warm-up done");
        var before = OpenDescriptors();
        for (var i = 0; i < 200; i++)
        {
            await OneAsync();
        }

        await Eventually.True(() => concurrency.Current(Revision) == 0 && gateway.Relay!.Active == 0, "connections done");
        Assert.Equal(201, gateway.Relay!.Started);

        // Other tests run beside this one and open descriptors of their own: a leak here would be 200 × (2 sockets + 4 pipe ends).
        await Eventually.True(() => OpenDescriptors() <= before + 40, $"descriptors back to about {before} (now {OpenDescriptors()})");
        await stop.CancelAsync();
        await echo;

        async Task OneAsync()
        {
            using var client = await ConnectAsync(gateway);
            await client.SendAsync(hello);
            await client.SendAsync("ping"u8.ToArray());
            client.Shutdown(SocketShutdown.Send);
            var echoed = await SocketTestIo.ReadToEndAsync(client).WaitAsync(TimeSpan.FromSeconds(10));
            Assert.Equal([.. hello, .. "ping"u8], echoed);
        }
    }

    [Fact]
    public async Task Set_up_waits_from_many_threads_at_once_are_never_lost()
    {
        // Eight connections each wait for a byte on the relay thousands of times while the others do the same, so
        // requests keep arriving while the loop drains its wake-up. A lost wake-up leaves a wait queued forever
        // (the gateway then stops reading new ClientHellos); here it times out the wait.
        var relay = SpliceRelay.TryCreate(1);
        Assert.NotNull(relay);
        using var listener = Listen();
        var pairs = new List<(Socket Waiter, Socket Sender)>();
        for (var i = 0; i < 8; i++)
        {
            var sender = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp) { NoDelay = true };
            await sender.ConnectAsync((IPEndPoint)listener.LocalEndpoint);
            pairs.Add((await listener.AcceptSocketAsync(), sender));
        }

        try
        {
            await Task.WhenAll(pairs.Select(pair => Task.Run(async () =>
            {
                var buffer = new byte[1];
                for (var n = 0; n < 1500; n++)
                {
                    var receiving = relay.ReceiveAsync(pair.Waiter, buffer, CancellationToken.None).AsTask();
                    pair.Sender.Send([(byte)n]);

                    // A wall-clock bound, not a token: a wait the loop never took cannot be canceled through it either.
                    Assert.Equal(1, await receiving.WaitAsync(TimeSpan.FromSeconds(10)));
                    Assert.Equal((byte)n, buffer[0]);
                }
            })));
        }
        finally
        {
            // Bounded: after a lost wake-up, disposing a socket the stuck wait still references blocks, and so does
            // stopping the loop; the test must fail, not hang.
            await Task.Run(() =>
            {
                foreach (var (waiter, sender) in pairs)
                {
                    waiter.Dispose();
                    sender.Dispose();
                }

                relay.Dispose();
            }).WaitAsync(TimeSpan.FromSeconds(10));
        }

        Assert.Equal(0, relay.Active);
    }

    private static TcpListener Listen()
    {
        var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        return listener;
    }

    private static SniPassthroughGateway Start(TcpListener backend, bool relay, RevisionConcurrency concurrency)
    {
        var gateway = new SniPassthroughGateway(new SniGatewayOptions { UseSpliceRelay = relay }, new OneRoute((IPEndPoint)backend.LocalEndpoint), concurrency);
        gateway.Start();
        Assert.Equal(relay, gateway.Relay is not null);
        return gateway;
    }

    private static async Task<Socket> ConnectAsync(SniPassthroughGateway gateway)
    {
        var client = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp) { NoDelay = true };
        await client.ConnectAsync(gateway.LocalEndPoint);
        return client;
    }

    private static async Task<byte[]> ReadExactlyAsync(Socket socket, int length)
    {
        var buffer = new byte[length];
        var read = 0;
        while (read < length)
        {
            var n = await socket.ReceiveAsync(buffer.AsMemory(read), SocketFlags.None).AsTask().WaitAsync(TimeSpan.FromSeconds(10));
            Assert.True(n > 0, "the connection ended early");
            read += n;
        }

        return buffer;
    }

    /// <summary>Sends <paramref name="total"/> bytes of the repeated pattern, then half-closes; reports where a send first stalled for a second.</summary>
    private static async Task FloodAsync(Socket socket, byte[] pattern, long total, TaskCompletionSource<long> stalled, CancellationToken cancel = default)
    {
        long sent = 0;
        while (sent < total)
        {
            var offset = (int)(sent % pattern.Length);
            var length = (int)Math.Min(pattern.Length - offset, total - sent);
            var send = socket.SendAsync(pattern.AsMemory(offset, length), SocketFlags.None, cancel).AsTask();
            if (!stalled.Task.IsCompleted && await Task.WhenAny(send, Task.Delay(1000, CancellationToken.None)) != send)
            {
                stalled.TrySetResult(sent);
            }

            sent += await send;
        }

        socket.Shutdown(SocketShutdown.Send);
    }

    /// <summary>Reads to the end, checking every byte against the repeated pattern; returns the count.</summary>
    private static async Task<long> ReadAndVerifyAsync(Socket socket, byte[] pattern)
    {
        var buffer = new byte[256 * 1024];
        long total = 0;
        int read;
        while ((read = await socket.ReceiveAsync(buffer, SocketFlags.None)) > 0)
        {
            var span = buffer.AsSpan(0, read);
            while (!span.IsEmpty)
            {
                var offset = (int)(total % pattern.Length);
                var length = Math.Min(span.Length, pattern.Length - offset);
                Assert.True(span[..length].SequenceEqual(pattern.AsSpan(offset, length)), $"bytes differ near offset {total}");
                span = span[length..];
                total += length;
            }
        }

        return total;
    }

    private static async Task KeepSendingAsync(Socket socket, byte[] chunk, CancellationToken cancel)
    {
        try
        {
            while (true)
            {
                await socket.SendAsync(chunk, SocketFlags.None, cancel);
            }
        }
        catch (Exception e) when (e is SocketException or OperationCanceledException or ObjectDisposedException)
        {
        }
    }

    private static async Task DrainUntilClosedAsync(Socket socket)
    {
        var buffer = new byte[64 * 1024];
        try
        {
            while (await socket.ReceiveAsync(buffer, SocketFlags.None) > 0)
            {
            }
        }
        catch (SocketException e) when (e.SocketErrorCode == SocketError.ConnectionReset)
        {
        }
    }

    private static async Task EchoEachAsync(TcpListener listener, CancellationToken stop)
    {
        try
        {
            while (true)
            {
                var socket = await listener.AcceptSocketAsync(stop);
                _ = Task.Run(async () =>
                {
                    using var _ = socket;
                    var received = await SocketTestIo.ReadToEndAsync(socket);
                    await socket.SendAsync(received);
                    socket.Shutdown(SocketShutdown.Both);
                }, CancellationToken.None);
            }
        }
        catch (OperationCanceledException)
        {
        }
    }

    private static int OpenDescriptors() => Directory.GetFiles("/proc/self/fd").Length;

    /// <summary>CPU time of every relay thread in the process (each gateway's threads share the name prefix).</summary>
    private static TimeSpan RelayThreadsCpu()
    {
        long ticks = 0;
        foreach (var task in Directory.GetDirectories("/proc/self/task"))
        {
            try
            {
                if (!File.ReadAllText(Path.Combine(task, "comm")).StartsWith("splice-relay", StringComparison.Ordinal))
                {
                    continue;
                }

                // Fields after the ")" that ends the name: state is the 3rd field, utime and stime the 14th and 15th.
                var stat = File.ReadAllText(Path.Combine(task, "stat"));
                var fields = stat[(stat.LastIndexOf(')') + 2)..].Split(' ');
                ticks += long.Parse(fields[11], System.Globalization.CultureInfo.InvariantCulture) + long.Parse(fields[12], System.Globalization.CultureInfo.InvariantCulture);
            }
            catch (IOException)
            {
                // The thread ended between listing and reading.
            }
        }

        return TimeSpan.FromSeconds(ticks / 100.0); // USER_HZ
    }
}
