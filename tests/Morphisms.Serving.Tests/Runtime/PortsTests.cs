using System.Net;
using System.Net.Sockets;
using Morphisms.Serving.Runtime;

namespace Morphisms.Serving.Tests;

/// <summary>The readiness probe: an open port means an app, not the probe talking to itself.</summary>
public sealed class PortsTests
{
    [Fact]
    public void A_connect_that_reached_itself_is_told_apart_from_one_that_reached_a_listener()
    {
        // What a probe of an unbound ephemeral port can become when the kernel picks that port as its source:
        // bound and connected to the same address, TCP completes a simultaneous open with itself.
        var port = Ports.Free();
        using var self = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
        self.Bind(new IPEndPoint(IPAddress.Loopback, port));
        self.Connect(new IPEndPoint(IPAddress.Loopback, port));
        Assert.True(Ports.IsSelfConnected(self));

        using var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        using var client = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
        client.Connect(listener.LocalEndpoint);
        Assert.False(Ports.IsSelfConnected(client));
    }

    [Fact]
    public async Task Only_a_listening_port_accepts()
    {
        using var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        Assert.True(await Ports.AcceptsAsync((IPEndPoint)listener.LocalEndpoint, CancellationToken.None));
        Assert.False(await Ports.AcceptsAsync(new IPEndPoint(IPAddress.Loopback, Ports.Free()), CancellationToken.None));
    }
}
