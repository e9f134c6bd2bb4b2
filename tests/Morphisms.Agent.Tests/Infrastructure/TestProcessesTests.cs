using System.Globalization;
using System.Net;
using System.Net.Sockets;

namespace Morphisms.Agent.Tests.Infrastructure;

/// <summary>The ports tests hand their servers: free, distinct, and outside what the kernel hands out by itself.</summary>
public sealed class TestProcessesTests
{
    [Fact]
    public void FreePort_HandsOutDistinctBindablePorts_OutsideTheEphemeralRange()
    {
        var range = File.Exists("/proc/sys/net/ipv4/ip_local_port_range")
            ? File.ReadAllText("/proc/sys/net/ipv4/ip_local_port_range").Split((char[]?)null, StringSplitOptions.RemoveEmptyEntries).Select(b => int.Parse(b, CultureInfo.InvariantCulture)).ToArray()
            : null;
        var ports = Enumerable.Range(0, 50).Select(_ => TestProcesses.FreePort()).ToList();

        Assert.Equal(ports.Count, ports.Distinct().Count());
        Assert.All(ports, port =>
        {
            Assert.True(range is null || port < range[0] || port > range[1], $"port {port} is in the ephemeral range {range?[0]}..{range?[1]}");
            using var listener = new TcpListener(IPAddress.Loopback, port);
            listener.Start();
        });
    }
}
