using System.Net;
using System.Net.Security;
using System.Net.Sockets;
using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;
using System.Text;
using Morphisms.Client.Functions;
using Morphisms.Client.Trust;

namespace Morphisms.Client.Tests;

/// <summary>
/// The CRL fetch's connections to the KMS outlive no handler made per call: every <see cref="FunctionHttpHandler.Create"/>
/// makes a CRL source, and a <see cref="SocketsHttpHandler"/> has nothing to dispose it with, so the sources for one KMS
/// share one pinned client. Real TLS on loopback, to a KMS that keeps its connections alive as Vault does.
/// </summary>
public sealed class KmsCrlSourceConnectionTests : IDisposable
{
    private const string Host = "signer.fn.morphisms.local";
    private readonly TestPki _pki = new();
    private readonly X509Certificate2 _kmsTls = LoopbackKms.SelfSignedTlsCertificate();

    public void Dispose()
    {
        _pki.Dispose();
        _kmsTls.Dispose();
    }

    [Fact]
    public async Task Handlers_made_and_disposed_per_call_reuse_one_kms_connection_and_leave_no_other_open()
    {
        using var leaf = _pki.Leaf("signer", Host, SHA384.HashData("signer bundle"u8));
        await using var function = new TlsTestServer(SslStreamCertificateContext.Create(leaf, [_pki.Intermediate], offline: true),
            _ => Encoding.ASCII.GetBytes("HTTP/1.1 200 OK\r\nContent-Length: 6\r\nConnection: close\r\n\r\nsigned"));
        await using var kms = new KeepAliveKms(_kmsTls, _pki.Crl());
        var trust = Record(kms.Endpoint.Port);

        for (var i = 0; i < 10; i++)
        {
            // A CRL cache of its own, as morph invoke has: every handler's warm-up fetches from the KMS.
            using var handler = FunctionHttpHandler.Create(trust, new FunctionExpectation { Function = "signer", Host = Host, AllowSimulated = true },
                chainCache: new VerifiedChainCache(), revocation: new FunctionRevocationOptions { Cache = new FunctionCrlCache() },
                connect: FunctionHttpHandler.ConnectTo(function.Endpoint));
            using var http = new HttpClient(handler, disposeHandler: false);
            Assert.Equal("signed", await http.GetStringAsync($"https://{Host}/"));
        }

        // A client per handler opened a connection per handler and kept it open after the handler was disposed. The shared
        // one serves every fetch, including those of handlers made after others were disposed.
        Assert.Equal(10, kms.Requests);
        Assert.Equal((1, 1), (kms.Accepted, kms.Open));
    }

    private KmsTrustRecord Record(int port) => LoopbackKms.TrustRecord(new Uri($"https://127.0.0.1:{port}"), _pki.Root, _kmsTls);

    /// <summary>A KMS serving <c>crl</c> to every request, on connections it keeps open until the client closes them.</summary>
    private sealed class KeepAliveKms : IAsyncDisposable
    {
        private readonly TcpListener _listener = new(IPAddress.Loopback, 0);
        private readonly CancellationTokenSource _stop = new();
        private readonly Task _loop;
        private int _accepted;
        private int _open;
        private int _requests;

        public KeepAliveKms(X509Certificate2 tls, byte[] crl)
        {
            var context = SslStreamCertificateContext.Create(tls, null);
            var response = Encoding.ASCII.GetBytes($"HTTP/1.1 200 OK\r\nContent-Type: application/pkix-crl\r\nContent-Length: {crl.Length}\r\n\r\n").Concat(crl).ToArray();
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

                    Interlocked.Increment(ref _accepted);
                    _ = Task.Run(() => ServeAsync(client, context, response));
                }
            });
        }

        public IPEndPoint Endpoint => (IPEndPoint)_listener.LocalEndpoint;

        /// <summary>Connections accepted.</summary>
        public int Accepted => Volatile.Read(ref _accepted);

        /// <summary>Connections the client has not closed.</summary>
        public int Open => Volatile.Read(ref _open);

        public int Requests => Volatile.Read(ref _requests);

        public async ValueTask DisposeAsync()
        {
            await _stop.CancelAsync();
            _listener.Stop();
            await _loop;
            _stop.Dispose();
        }

        private async Task ServeAsync(TcpClient client, SslStreamCertificateContext context, byte[] response)
        {
            Interlocked.Increment(ref _open);
            try
            {
                using var _ = client;
                await using var ssl = new SslStream(client.GetStream());
                await ssl.AuthenticateAsServerAsync(new SslServerAuthenticationOptions { ServerCertificateContext = context }, _stop.Token);
                var buffer = new byte[4096];

                // A GET fits in one read; the client closing the connection ends it.
                while (await ssl.ReadAsync(buffer, _stop.Token) > 0)
                {
                    Interlocked.Increment(ref _requests);
                    await ssl.WriteAsync(response, _stop.Token);
                }
            }
            catch (Exception e) when (e is IOException or OperationCanceledException or System.Security.Authentication.AuthenticationException)
            {
                // The client went away, or the test ended.
            }
            finally
            {
                Interlocked.Decrement(ref _open);
            }
        }
    }
}
