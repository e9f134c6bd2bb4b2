using System.Globalization;
using System.Net;
using System.Net.Sockets;

namespace Morphisms.Testing;

/// <summary>What tests that start real child processes need: the dotnet host and free loopback ports.</summary>
public static class TestProcesses
{
    // Linux's default ephemeral range, for a kernel that does not say (and other systems, whose range starts higher).
    private const int DefaultEphemeralLow = 32768;
    private const int DefaultEphemeralHigh = 60999;

    // Ports below this are left alone: well-known and registered services of the machine's own live there.
    private const int LowestPort = 20000;

    private static readonly (int Low, int Count) Ports = PortRange();

    // Each process starts at its own random point of the range, so parallel test processes rarely hand out the same port.
    private static int _next = Random.Shared.Next(Ports.Count);

    /// <summary>The dotnet host running the tests (<c>dotnet test</c> sets DOTNET_HOST_PATH), else dotnet on PATH.</summary>
    public static string DotnetHost =>
        Environment.GetEnvironmentVariable("DOTNET_HOST_PATH") is { Length: > 0 } host && File.Exists(host) ? host
        : Environment.ProcessPath is { } self && Path.GetFileNameWithoutExtension(self) == "dotnet" ? self
        : "dotnet";

    /// <summary>
    /// A loopback port nothing is bound to right now, which nothing else in the machine is handed meanwhile: it comes from
    /// below the kernel's ephemeral range, where neither a bind to port 0 (another test's listener) nor an outgoing
    /// connection's local port is taken from, so it stays free until the test or its child binds it seconds later. A port
    /// from a bind to port 0, released at once, was the kernel's to hand out again in between. Ports are handed out in
    /// turn from a random start, each checked with a trial bind, so one process never hands out a port twice before the
    /// range wraps.
    /// </summary>
    public static int FreePort()
    {
        if (Ports.Count == 0)
        {
            // A kernel whose ephemeral range leaves no room: as before, a port the kernel had free a moment ago.
            using var listener = new TcpListener(IPAddress.Loopback, 0);
            listener.Start();
            return ((IPEndPoint)listener.LocalEndpoint).Port;
        }

        for (var tried = 0; tried < Ports.Count; tried++)
        {
            var port = Ports.Low + (int)((uint)Interlocked.Increment(ref _next) % (uint)Ports.Count);
            if (Bindable(port))
            {
                return port;
            }
        }

        throw new InvalidOperationException($"no free loopback port in {Ports.Low}..{Ports.Low + Ports.Count - 1}");
    }

    // Free on IPv4 loopback (which a listener on any address also blocks) and, where the machine has it, on IPv6's.
    private static bool Bindable(int port)
    {
        foreach (var address in Socket.OSSupportsIPv6 ? new[] { IPAddress.Loopback, IPAddress.IPv6Loopback } : [IPAddress.Loopback])
        {
            try
            {
                using var trial = new Socket(address.AddressFamily, SocketType.Stream, ProtocolType.Tcp);
                trial.Bind(new IPEndPoint(address, port));
            }
            catch (SocketException e) when (e.SocketErrorCode == SocketError.AddressAlreadyInUse || e.SocketErrorCode == SocketError.AccessDenied)
            {
                return false;
            }
            catch (SocketException) when (address.AddressFamily == AddressFamily.InterNetworkV6)
            {
                // No IPv6 loopback here (a container without ::1): nothing can listen there either.
            }
        }

        return true;
    }

    // The ports outside the kernel's ephemeral range (/proc/sys/net/ipv4/ip_local_port_range): from LowestPort up to it,
    // else above it, whichever is larger; none (a count of 0) when neither holds a thousand.
    private static (int Low, int Count) PortRange()
    {
        var (ephemeralLow, ephemeralHigh) = (DefaultEphemeralLow, DefaultEphemeralHigh);
        try
        {
            var bounds = File.ReadAllText("/proc/sys/net/ipv4/ip_local_port_range").Split((char[]?)null, StringSplitOptions.RemoveEmptyEntries);
            (ephemeralLow, ephemeralHigh) = (int.Parse(bounds[0], CultureInfo.InvariantCulture), int.Parse(bounds[1], CultureInfo.InvariantCulture));
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException or FormatException or IndexOutOfRangeException or OverflowException)
        {
            // Not Linux: the default's lower bound is below other systems' ranges too.
        }

        var below = (Low: LowestPort, Count: ephemeralLow - LowestPort);
        var above = (Low: ephemeralHigh + 1, Count: IPEndPoint.MaxPort - ephemeralHigh);
        var chosen = below.Count >= above.Count ? below : above;
        return chosen.Count >= 1000 ? chosen : (0, 0);
    }
}
