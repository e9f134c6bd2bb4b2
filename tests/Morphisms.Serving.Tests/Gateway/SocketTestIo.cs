using System.Net.Sockets;

namespace Morphisms.Serving.Tests.Gateway;

/// <summary>Plain socket reads shared by the gateway tests.</summary>
internal static class SocketTestIo
{
    /// <summary>Everything <paramref name="socket"/> receives until its peer half-closes.</summary>
    public static async Task<byte[]> ReadToEndAsync(Socket socket)
    {
        var all = new MemoryStream();
        var buffer = new byte[64 * 1024];
        int read;
        while ((read = await socket.ReceiveAsync(buffer, SocketFlags.None)) > 0)
        {
            all.Write(buffer, 0, read);
        }

        return all.ToArray();
    }
}
