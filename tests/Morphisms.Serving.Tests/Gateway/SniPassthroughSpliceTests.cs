using System.Buffers.Binary;
using System.Net;
using System.Net.Sockets;
using System.Security.Cryptography;
using System.Text;
using Morphisms.Serving.Gateway;

namespace Morphisms.Serving.Tests.Gateway;

/// <summary>
/// The byte splicing behind the ClientHello: whatever follows it is opaque to the gateway, so these tests drive it
/// with raw bytes behind a real or synthetic ClientHello and check that both directions arrive byte-exact.
/// </summary>
public class SniPassthroughSpliceTests
{
    private const string Host = "splice.fn.morphisms.local";

    private sealed class OneRoute(IPEndPoint backend) : IBackendResolver
    {
        public ValueTask<BackendTarget?> ResolveAsync(string serverName, CancellationToken cancellationToken) =>
            ValueTask.FromResult(serverName == Host ? new BackendTarget("splice-00001", backend) : null);
    }

    [Fact]
    public async Task Megabytes_pass_byte_exact_both_ways_and_the_half_close_reaches_the_backend()
    {
        var hello = await TlsTestPeers.CaptureClientHelloAsync(Host);
        var payload = RandomNumberGenerator.GetBytes(3 * 1024 * 1024 + 17);
        await using var backend = EchoAfterEof.Start();
        await using var gateway = Start(backend.Endpoint);

        // The backend answers only after the client's half-close reaches it, so this also proves the half-close is passed on.
        var echoed = await SendAndReadToEndAsync(gateway.LocalEndPoint, [hello, payload]);

        Assert.Equal(hello.Length + payload.Length, echoed.Length);
        Assert.True(echoed.AsSpan(0, hello.Length).SequenceEqual(hello), "the ClientHello reached the backend unchanged");
        Assert.True(echoed.AsSpan(hello.Length).SequenceEqual(payload), "the payload reached the backend and came back unchanged");
    }

    [Fact]
    public async Task A_client_hello_larger_than_the_copy_buffer_and_trickled_in_is_forwarded_whole()
    {
        // 40 KB of padding before the server_name: the name is only readable once the second record is in.
        var hello = SyntheticClientHello(Host, padding: 40_000);
        Assert.True(hello.Length > 32 * 1024);
        await using var backend = EchoAfterEof.Start();
        await using var gateway = Start(backend.Endpoint);

        var pieces = new[] { hello[..100], hello[100..20_000], hello[20_000..], "after the hello"u8.ToArray() };
        var echoed = await SendAndReadToEndAsync(gateway.LocalEndPoint, pieces, pause: TimeSpan.FromMilliseconds(50));

        Assert.Equal([.. hello, .. "after the hello"u8], echoed);
    }

    [Fact]
    public async Task Disposing_the_gateway_closes_spliced_connections()
    {
        var hello = await TlsTestPeers.CaptureClientHelloAsync(Host);
        var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        try
        {
            var gateway = Start((IPEndPoint)listener.LocalEndpoint);
            using var client = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
            await client.ConnectAsync(gateway.LocalEndPoint);
            await client.SendAsync(hello);
            using var held = await listener.AcceptSocketAsync().WaitAsync(TimeSpan.FromSeconds(10)); // never answers, never closes

            await gateway.DisposeAsync();

            // Closed either way: an orderly FIN (read returns 0) or, when the gateway still had unread bytes of this
            // connection at close, a reset. What must not happen is the connection staying open.
            try
            {
                var read = await client.ReceiveAsync(new byte[16], SocketFlags.None).WaitAsync(TimeSpan.FromSeconds(10));
                Assert.Equal(0, read);
            }
            catch (SocketException e) when (e.SocketErrorCode == SocketError.ConnectionReset)
            {
            }
        }
        finally
        {
            listener.Stop();
        }
    }

    private static SniPassthroughGateway Start(IPEndPoint backend)
    {
        var gateway = new SniPassthroughGateway(new SniGatewayOptions(), new OneRoute(backend), new RevisionConcurrency());
        gateway.Start();
        return gateway;
    }

    private static async Task<byte[]> SendAndReadToEndAsync(IPEndPoint gateway, byte[][] pieces, TimeSpan pause = default)
    {
        using var client = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp) { NoDelay = true };
        await client.ConnectAsync(gateway);
        var reading = SocketTestIo.ReadToEndAsync(client);
        foreach (var piece in pieces)
        {
            await client.SendAsync(piece);
            if (pause > TimeSpan.Zero)
            {
                await Task.Delay(pause);
            }
        }

        client.Shutdown(SocketShutdown.Send);
        return await reading.WaitAsync(TimeSpan.FromSeconds(30));
    }

    /// <summary>
    /// A ClientHello with a padding extension (RFC 7685) of <paramref name="padding"/> bytes before server_name,
    /// split into TLS records of at most 16 KiB as a client must.
    /// </summary>
    private static byte[] SyntheticClientHello(string host, int padding)
    {
        var name = Encoding.ASCII.GetBytes(host);
        var extensions = new MemoryStream();
        Extension(extensions, 21, new byte[padding]);
        var sni = new byte[5 + name.Length];
        BinaryPrimitives.WriteUInt16BigEndian(sni, (ushort)(3 + name.Length));
        sni[2] = 0; // host_name
        BinaryPrimitives.WriteUInt16BigEndian(sni.AsSpan(3), (ushort)name.Length);
        name.CopyTo(sni, 5);
        Extension(extensions, 0, sni);

        var body = new MemoryStream();
        body.Write([3, 3]);
        body.Write(RandomNumberGenerator.GetBytes(32));
        body.Write([0, 0, 2, 0x13, 0x01, 1, 0]); // no session id, TLS_AES_128_GCM_SHA256, null compression
        var extensionBytes = extensions.ToArray();
        body.Write([(byte)(extensionBytes.Length >> 8), (byte)extensionBytes.Length]);
        body.Write(extensionBytes);
        var bodyBytes = body.ToArray();
        byte[] handshake = [1, (byte)(bodyBytes.Length >> 16), (byte)(bodyBytes.Length >> 8), (byte)bodyBytes.Length, .. bodyBytes];

        var records = new MemoryStream();
        for (var offset = 0; offset < handshake.Length; offset += 16 * 1024)
        {
            var fragment = handshake.AsSpan(offset, Math.Min(16 * 1024, handshake.Length - offset));
            records.Write([22, 3, 1, (byte)(fragment.Length >> 8), (byte)fragment.Length]);
            records.Write(fragment);
        }

        return records.ToArray();

        static void Extension(MemoryStream to, ushort type, byte[] data)
        {
            to.Write([(byte)(type >> 8), (byte)type, (byte)(data.Length >> 8), (byte)data.Length]);
            to.Write(data);
        }
    }

    /// <summary>A backend that reads until the client's half-close, then sends everything back and closes.</summary>
    private sealed class EchoAfterEof : IAsyncDisposable
    {
        private readonly TcpListener _listener = new(IPAddress.Loopback, 0);
        private Task _serving = Task.CompletedTask;

        public IPEndPoint Endpoint => (IPEndPoint)_listener.LocalEndpoint;

        public static EchoAfterEof Start()
        {
            var echo = new EchoAfterEof();
            echo._listener.Start();
            echo._serving = echo.ServeAsync();
            return echo;
        }

        private async Task ServeAsync()
        {
            using var socket = await _listener.AcceptSocketAsync();
            var received = await SocketTestIo.ReadToEndAsync(socket);
            await socket.SendAsync(received);
            socket.Shutdown(SocketShutdown.Both);
        }

        public async ValueTask DisposeAsync()
        {
            _listener.Stop();
            await _serving.ContinueWith(_ => { }, TaskScheduler.Default);
        }
    }
}
