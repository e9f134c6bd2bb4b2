using System.Net;
using System.Net.Sockets;

namespace Morphisms.Serving.Runtime;

/// <summary>Loopback port allocation for instances.</summary>
internal static class Ports
{
    /// <summary>A loopback port free right now (the OS picks it; the tiny window before the instance binds is accepted).</summary>
    public static int Free()
    {
        using var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        return ((IPEndPoint)listener.LocalEndpoint).Port;
    }

    /// <summary>True when something accepts TCP on <paramref name="endpoint"/>.</summary>
    public static async Task<bool> AcceptsAsync(IPEndPoint endpoint, CancellationToken ct)
    {
        using var client = new TcpClient();
        try
        {
            using var timeout = CancellationTokenSource.CreateLinkedTokenSource(ct);
            timeout.CancelAfter(TimeSpan.FromSeconds(1));
            await client.ConnectAsync(endpoint, timeout.Token).ConfigureAwait(false);
            return !IsSelfConnected(client.Client);
        }
        catch (SocketException)
        {
            // Refused: not listening (yet). Also when the instance is gone meanwhile: the caller's next wait on `ct`
            // reports that, as a cancellation, and a refused connect must not surface in its place.
            return false;
        }
        catch (OperationCanceledException) when (!ct.IsCancellationRequested)
        {
            return false;
        }
    }

    /// <summary>
    /// True when a loopback connect to a port nobody listens on was given that same port as its source, and so
    /// connected to itself (TCP simultaneous open): the port looks open but no app is there. Instance ports come from
    /// the ephemeral range, where a probe repeated every few milliseconds can hit this.
    /// </summary>
    public static bool IsSelfConnected(Socket socket) =>
        socket.LocalEndPoint is IPEndPoint local && socket.RemoteEndPoint is IPEndPoint remote && local.Equals(remote);
}
