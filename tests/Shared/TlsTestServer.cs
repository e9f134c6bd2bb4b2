using System.Net;
using System.Net.Security;
using System.Net.Sockets;

namespace Morphisms.Testing;

/// <summary>
/// A TLS server on loopback standing in for an instance's terminator: each connection completes the
/// handshake with the given certificate context, reads one chunk and writes what
/// <c>respond</c> makes of it, then closes.
/// </summary>
public sealed class TlsTestServer : IAsyncDisposable
{
    private readonly TcpListener _listener = new(IPAddress.Loopback, 0);
    private readonly CancellationTokenSource _stop = new();
    private readonly Task _loop;
    private int _served;

    /// <summary>Starts the server.</summary>
    public TlsTestServer(SslStreamCertificateContext certificate, Func<byte[], byte[]> respond)
    {
        _listener.Start();
        _loop = Task.Run(async () =>
        {
            while (!_stop.IsCancellationRequested)
            {
                TcpClient client;
                try
                {
                    client = await _listener.AcceptTcpClientAsync(_stop.Token);
                }
                catch (OperationCanceledException)
                {
                    return;
                }

                _ = Task.Run(() => ServeAsync(client, certificate, respond));
            }
        });
    }

    /// <summary>Where the server listens.</summary>
    public IPEndPoint Endpoint => (IPEndPoint)_listener.LocalEndpoint;

    /// <summary>Connections that got as far as a request.</summary>
    public int RequestsServed => Volatile.Read(ref _served);

    /// <inheritdoc />
    public async ValueTask DisposeAsync()
    {
        await _stop.CancelAsync();
        _listener.Stop();
        await _loop;
        _stop.Dispose();
    }

    private async Task ServeAsync(TcpClient client, SslStreamCertificateContext certificate, Func<byte[], byte[]> respond)
    {
        using var _ = client;
        await using var ssl = new SslStream(client.GetStream());
        try
        {
            await ssl.AuthenticateAsServerAsync(new SslServerAuthenticationOptions { ServerCertificateContext = certificate });
            var buffer = new byte[4096];
            var read = await ssl.ReadAsync(buffer);
            if (read == 0)
            {
                return; // a TLS 1.3 client that rejects our certificate closes after the server's handshake ends
            }

            Interlocked.Increment(ref _served);
            await ssl.WriteAsync(respond(buffer[..read]));
            await ssl.ShutdownAsync();
        }
        catch (Exception e) when (e is IOException or System.Security.Authentication.AuthenticationException)
        {
            // The client went away or refused our certificate: that is what some tests want.
        }
    }
}
