using System.Collections.Concurrent;
using System.Net;
using System.Net.Sockets;
using Microsoft.Extensions.Time.Testing;
using Morphisms.Serving.Gateway;

namespace Morphisms.Serving.Tests.Gateway;

public class SniPassthroughGatewayTests
{
    private sealed class MapResolver(Dictionary<string, BackendTarget> routes) : IBackendResolver
    {
        public ValueTask<BackendTarget?> ResolveAsync(string serverName, CancellationToken cancellationToken) =>
            ValueTask.FromResult(routes.GetValueOrDefault(serverName));
    }

    [Fact]
    public async Task Tls_passes_through_to_the_instance_that_holds_the_key()
    {
        using var certificate = TlsTestPeers.SelfSigned("hello.fn.morphisms.local");
        await using var backend = TlsTestPeers.Backend(certificate, "instance");
        var concurrency = new RevisionConcurrency();
        await using var gateway = new SniPassthroughGateway(new SniGatewayOptions(),
            new MapResolver(new() { ["hello.fn.morphisms.local"] = new("hello-00001", backend.Endpoint) }), concurrency);
        gateway.Start();

        // The client pins the instance's own certificate: the gateway has none, so it cannot be in the middle.
        var reply = await TlsTestPeers.AskAsync(gateway.LocalEndPoint, "hello.fn.morphisms.local", certificate, "ping");
        Assert.Equal("instance: ping", reply);
        await Eventually.True(() => concurrency.Current("hello-00001") == 0, "in-flight count back to zero");
    }

    /// <summary>
    /// An instance stopping refuses at TCP before it drains, so that its clients go elsewhere: nothing was forwarded yet,
    /// so the gateway asks again without it and the client never sees the refusal.
    /// </summary>
    [Theory]
    [InlineData(true)]
    [InlineData(false)]
    public async Task A_refused_backend_connect_goes_to_another_instance(bool spliceRelay)
    {
        using var certificate = TlsTestPeers.SelfSigned("hello.fn.morphisms.local");
        await using var backend = TlsTestPeers.Backend(certificate, "instance");
        var dead = new IPEndPoint(IPAddress.Loopback, TestProcesses.FreePort());
        var resolver = new RefusedFirstResolver(new("hello-00001", dead), new("hello-00001", backend.Endpoint));
        await using var gateway = new SniPassthroughGateway(new SniGatewayOptions { UseSpliceRelay = spliceRelay }, resolver, new RevisionConcurrency());
        gateway.Start();

        var reply = await TlsTestPeers.AskAsync(gateway.LocalEndPoint, "hello.fn.morphisms.local", certificate, "ping");

        Assert.Equal("instance: ping", reply);
        Assert.Equal([dead], Assert.Single(resolver.Refused));
        Assert.Equal(0, gateway.RefusedForBackend);
    }

    [Fact]
    public async Task A_resolver_that_names_the_refused_instance_again_ends_the_connection()
    {
        var dead = new IPEndPoint(IPAddress.Loopback, TestProcesses.FreePort());
        var hello = await TlsTestPeers.CaptureClientHelloAsync("hello.fn.morphisms.local");
        await using var gateway = new SniPassthroughGateway(new SniGatewayOptions(),
            new MapResolver(new() { ["hello.fn.morphisms.local"] = new("hello-00001", dead) }), new RevisionConcurrency());
        gateway.Start();
        using var client = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
        await client.ConnectAsync(gateway.LocalEndPoint);
        await client.SendAsync(hello);

        Assert.Equal(0, await client.ReceiveAsync(new byte[1], SocketFlags.None).WaitAsync(TimeSpan.FromSeconds(10)));
        Assert.Equal(1, gateway.RefusedForBackend);
    }

    [Fact]
    public async Task An_unknown_host_gets_an_alert_and_no_connection()
    {
        using var certificate = TlsTestPeers.SelfSigned("hello.fn.morphisms.local");
        await using var gateway = new SniPassthroughGateway(new SniGatewayOptions(), new MapResolver([]), new RevisionConcurrency());
        gateway.Start();
        await Assert.ThrowsAnyAsync<Exception>(() => TlsTestPeers.AskAsync(gateway.LocalEndPoint, "nobody.fn.morphisms.local", certificate, "ping"));
    }

    [Fact]
    public async Task Connections_beyond_capacity_are_refused_and_counted()
    {
        using var certificate = TlsTestPeers.SelfSigned("hello.fn.morphisms.local");
        await using var gateway = new SniPassthroughGateway(new SniGatewayOptions { MaxConnections = 1, ClientHelloTimeout = TimeSpan.FromSeconds(30) },
            new MapResolver([]), new RevisionConcurrency());
        gateway.Start();

        using var holder = new TcpClient();
        await holder.ConnectAsync(gateway.LocalEndPoint); // sends nothing: holds the only slot
        using var refused = new TcpClient();
        await refused.ConnectAsync(gateway.LocalEndPoint);
        var buffer = new byte[1];
        var read = await refused.GetStream().ReadAsync(buffer).AsTask().WaitAsync(TimeSpan.FromSeconds(10));
        Assert.Equal(0, read);
        Assert.Equal(1, gateway.RefusedForCapacity);
    }

    [Fact]
    public async Task A_silent_client_is_dropped_after_the_client_hello_timeout()
    {
        await using var gateway = new SniPassthroughGateway(new SniGatewayOptions { ClientHelloTimeout = TimeSpan.FromMilliseconds(200) },
            new MapResolver([]), new RevisionConcurrency());
        gateway.Start();
        using var silent = new TcpClient();
        await silent.ConnectAsync(gateway.LocalEndPoint);
        var read = await silent.GetStream().ReadAsync(new byte[1]).AsTask().WaitAsync(TimeSpan.FromSeconds(10));
        Assert.Equal(0, read);
    }

    /// <summary>The ClientHello and backend timeouts run on the options' clock: a fake one cuts them only when advanced.</summary>
    [Fact]
    public async Task The_client_hello_timeout_runs_on_the_options_clock()
    {
        var time = new FakeTimeProvider();
        await using var gateway = new SniPassthroughGateway(new SniGatewayOptions { Time = time, ClientHelloTimeout = TimeSpan.FromMinutes(1) },
            new MapResolver([]), new RevisionConcurrency());
        gateway.Start();
        using var silent = new TcpClient();
        await silent.ConnectAsync(gateway.LocalEndPoint);
        var read = silent.GetStream().ReadAsync(new byte[1]).AsTask();

        Assert.Equal(0, await AdvanceUntilAsync(time, read));
    }

    [Fact]
    public async Task The_backend_timeout_runs_on_the_options_clock()
    {
        const string host = "hello.fn.morphisms.local";
        var hello = await TlsTestPeers.CaptureClientHelloAsync(host);
        var time = new FakeTimeProvider();
        await using var gateway = new SniPassthroughGateway(new SniGatewayOptions { Time = time, BackendTimeout = TimeSpan.FromMinutes(1) },
            new NeverResolver(), new RevisionConcurrency());
        gateway.Start();
        using var client = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
        await client.ConnectAsync(gateway.LocalEndPoint);
        await client.SendAsync(hello);
        var read = client.ReceiveAsync(new byte[1], SocketFlags.None);

        Assert.Equal(0, await AdvanceUntilAsync(time, read));
        Assert.Equal(1, gateway.RefusedForBackend);
    }

    // Not cut by the real clock in the first half second; then advanced a minute at a time until it completes (the
    // gateway may start its timer after the first advance).
    private static async Task<int> AdvanceUntilAsync(FakeTimeProvider time, Task<int> read)
    {
        await Task.Delay(500);
        Assert.False(read.IsCompleted, "cut before the fake clock moved");
        for (var i = 0; i < 100 && !read.IsCompleted; i++)
        {
            time.Advance(TimeSpan.FromMinutes(1));
            await Task.WhenAny(read, Task.Delay(100));
        }

        return await read.WaitAsync(TimeSpan.FromSeconds(1));
    }

    private sealed class NeverResolver : IBackendResolver
    {
        public async ValueTask<BackendTarget?> ResolveAsync(string serverName, CancellationToken cancellationToken)
        {
            await Task.Delay(Timeout.Infinite, cancellationToken);
            return null;
        }
    }

    [Fact]
    public async Task A_failed_accept_such_as_out_of_descriptors_is_retried_and_the_gateway_keeps_serving()
    {
        const string host = "hello.fn.morphisms.local";
        var hello = await TlsTestPeers.CaptureClientHelloAsync(host);
        using var backend = new TcpListener(IPAddress.Loopback, 0);
        backend.Start();
        var time = new FakeTimeProvider();
        var log = new ConcurrentQueue<string>();
        var accepts = 0;
        await using var gateway = new SniPassthroughGateway(new SniGatewayOptions { Time = time, Log = log.Enqueue },
            new MapResolver(new() { [host] = new("hello-00001", (IPEndPoint)backend.LocalEndpoint) }), new RevisionConcurrency(), null,
            (listener, ct) => Interlocked.Increment(ref accepts) == 1
                ? ValueTask.FromException<Socket>(new SocketException((int)SocketError.TooManyOpenSockets)) // EMFILE
                : listener.AcceptSocketAsync(ct));
        gateway.Start(); // the first accept fails at once: the loop now waits out its pause on the fake clock

        using var client = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
        await client.ConnectAsync(gateway.LocalEndPoint); // into the backlog, as while descriptors are short
        await client.SendAsync(hello);
        client.Shutdown(SocketShutdown.Send);
        time.Advance(TimeSpan.FromSeconds(1));

        using var forwarded = await backend.AcceptSocketAsync().WaitAsync(TimeSpan.FromSeconds(10));
        Assert.Equal(hello, await SocketTestIo.ReadToEndAsync(forwarded).WaitAsync(TimeSpan.FromSeconds(10)));
        Assert.Contains(log, line => line.Contains("accepting failed (TooManyOpenSockets", StringComparison.Ordinal));
        Assert.Contains(log, line => line.Contains("accepting again after 1 failed accepts", StringComparison.Ordinal));
    }

    [Theory]
    [InlineData(4096, null, 4096)] // limit unknown or unlimited
    [InlineData(4096, 1_048_576L, 4096)]
    [InlineData(4096, 4096L, 640)] // (4096 - 256 headroom) / 6 descriptors per relayed connection
    [InlineData(4096, 1024L, 128)]
    [InlineData(4096, 100L, 1)]
    public void The_connection_bound_fits_the_descriptor_limit(int configured, long? openFileLimit, int expected) =>
        Assert.Equal(expected, SniPassthroughGateway.ConnectionLimit(configured, openFileLimit));
}
