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
            return true;
        }
        catch (Exception e) when (e is SocketException or OperationCanceledException && !ct.IsCancellationRequested)
        {
            return false;
        }
    }
}
