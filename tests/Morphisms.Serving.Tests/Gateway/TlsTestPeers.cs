using System.Net;
using System.Net.Security;
using System.Net.Sockets;
using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;
using System.Text;

namespace Morphisms.Serving.Tests.Gateway;

/// <summary>Real TLS peers on loopback for the gateway tests.</summary>
internal static class TlsTestPeers
{
    /// <summary>The first bytes a real .NET TLS client sends for <paramref name="targetHost"/>.</summary>
    public static async Task<byte[]> CaptureClientHelloAsync(string targetHost)
    {
        var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        try
        {
            using var client = new TcpClient();
            await client.ConnectAsync((IPEndPoint)listener.LocalEndpoint);
            using var server = await listener.AcceptTcpClientAsync();
            using var ssl = new SslStream(client.GetStream());
            using var stop = new CancellationTokenSource();
            var handshake = ssl.AuthenticateAsClientAsync(new SslClientAuthenticationOptions { TargetHost = targetHost }, stop.Token);

            var buffer = new byte[64 * 1024];
            var length = 0;
            var stream = server.GetStream();
            do
            {
                length += await stream.ReadAsync(buffer.AsMemory(length));
            }
            while (length < 5 || length < 5 + ((buffer[3] << 8) | buffer[4]));

            await stop.CancelAsync();
            server.Close();
            await Assert.ThrowsAnyAsync<Exception>(() => handshake);
            return buffer[..length];
        }
        finally
        {
            listener.Stop();
        }
    }

    public static X509Certificate2 SelfSigned(string host)
    {
        using var key = ECDsa.Create(ECCurve.NamedCurves.nistP256);
        var request = new CertificateRequest($"CN={host}", key, HashAlgorithmName.SHA256);
        var san = new SubjectAlternativeNameBuilder();
        san.AddDnsName(host);
        request.CertificateExtensions.Add(san.Build());
        using var certificate = request.CreateSelfSigned(DateTimeOffset.UtcNow.AddMinutes(-5), DateTimeOffset.UtcNow.AddHours(1));
        // Round-trip through PKCS#12 so SslStream on Linux can use the private key.
        return X509CertificateLoader.LoadPkcs12(certificate.Export(X509ContentType.Pkcs12), null);
    }

    /// <summary>An instance's stand-in: answers every connection with "REPLY: what the client sent".</summary>
    public static TlsTestServer Backend(X509Certificate2 certificate, string reply) =>
        new(SslStreamCertificateContext.Create(certificate, null), request => Encoding.UTF8.GetBytes($"{reply}: {Encoding.UTF8.GetString(request)}"));

    /// <summary>Connects through <paramref name="gateway"/> as a client that pins <paramref name="expected"/>.</summary>
    public static async Task<string> AskAsync(IPEndPoint gateway, string host, X509Certificate2 expected, string message)
    {
        using var client = new TcpClient();
        await client.ConnectAsync(gateway);
        await using var ssl = new SslStream(client.GetStream());
        await ssl.AuthenticateAsClientAsync(new SslClientAuthenticationOptions
        {
            TargetHost = host,
            RemoteCertificateValidationCallback = (_, certificate, _, _) =>
                certificate is not null && certificate.GetCertHashString(HashAlgorithmName.SHA256) == expected.GetCertHashString(HashAlgorithmName.SHA256),
        });
        await ssl.WriteAsync(Encoding.UTF8.GetBytes(message));
        var reply = new MemoryStream();
        await ssl.CopyToAsync(reply);
        return Encoding.UTF8.GetString(reply.ToArray());
    }
}
