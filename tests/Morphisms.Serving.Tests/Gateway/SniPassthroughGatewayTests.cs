using System.Net.Sockets;
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
}
