using System.Net;
using System.Net.Security;
using System.Net.Sockets;
using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;

namespace Morphisms.Agent.Tls;

/// <summary>
/// One throwaway TLS handshake with itself over loopback, started while the TEE measures the launch. A fresh process's
/// first handshake pays for loading and initialising OpenSSL, the key exchange and the X.509 code; paying it here
/// overlaps it with the measurement instead of adding it to the attestation. (Most of what it used to wait for was the
/// OS trust store's loading, which <see cref="SystemTrustStore"/> now prevents.) Nothing leaves the process and nothing
/// is trusted: the KMS has not been pinned yet, so it must not be contacted, and this connection carries no data.
/// </summary>
internal static class TlsWarmup
{
    /// <summary>Runs the handshake; never throws (a failed warm-up only means the first real handshake pays instead).</summary>
    public static async Task RunAsync()
    {
        try
        {
            using var key = ECDsa.Create(ECCurve.NamedCurves.nistP256);
            var request = new CertificateRequest("CN=morph-init warm-up", key, HashAlgorithmName.SHA256);
            var now = DateTimeOffset.UtcNow;
            using var certificate = request.CreateSelfSigned(now.AddMinutes(-1), now.AddMinutes(5));
            using var listener = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
            listener.Bind(new IPEndPoint(IPAddress.Loopback, 0));
            listener.Listen(1);
            using var client = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
            var connecting = client.ConnectAsync(listener.LocalEndPoint!);
            using var server = await listener.AcceptAsync().ConfigureAwait(false);
            await connecting.ConfigureAwait(false);

            await using var serverTls = new SslStream(new NetworkStream(server, ownsSocket: false));
            await using var clientTls = new SslStream(new NetworkStream(client, ownsSocket: false));
            using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(5));
            var serverSide = serverTls.AuthenticateAsServerAsync(
                new SslServerAuthenticationOptions { ServerCertificateContext = SslStreamCertificateContext.Create(certificate, null) }, timeout.Token);
            await clientTls.AuthenticateAsClientAsync(
                new SslClientAuthenticationOptions
                {
                    TargetHost = "warm-up",
                    RemoteCertificateValidationCallback = static (_, presented, _, _) => WarmChainCode(presented),
                },
                timeout.Token).ConfigureAwait(false);
            await serverSide.ConfigureAwait(false);
        }
        catch (Exception e) when (e is IOException or SocketException or System.Security.Authentication.AuthenticationException or OperationCanceledException or CryptographicException or ObjectDisposedException)
        {
        }
    }

    // Builds a chain the way KmsPin does, so that code is initialised too; the answer is irrelevant (nothing is sent).
    private static bool WarmChainCode(X509Certificate? presented)
    {
        if (presented is X509Certificate2 leaf)
        {
            using var chain = new X509Chain();
            chain.ChainPolicy.TrustMode = X509ChainTrustMode.CustomRootTrust;
            chain.ChainPolicy.CustomTrustStore.Add(leaf);
            chain.ChainPolicy.RevocationMode = X509RevocationMode.NoCheck;
            chain.Build(leaf);
        }

        return true;
    }
}
