using System.Net;
using System.Net.Security;
using System.Net.Sockets;
using System.Security.Cryptography;
using System.Security.Authentication;
using System.Security.Cryptography.X509Certificates;
using System.Text;
using Morphisms.Serving.Hosting;
using Morphisms.Serving.Revisions;
using Morphisms.Serving.Spec;
using Morphisms.Testing;

namespace Morphisms.Serving.Tests.Hosting;

/// <summary>
/// The serving host sends a token that may write policies to the KMS, so its pin must hold against an impostor
/// that presents a copy of the (public) pinned CA certificate beside a leaf of its own. And the policy it writes must
/// never carry rules smuggled in through a function's secret path.
/// </summary>
public sealed class KmsRegistrarPinTests
{
    private const string Token = "s.registrar-test-token";

    [Fact]
    public async Task ThePinnedCertificate_GetsTheRequest()
    {
        // The KMS's default: a self-signed TLS certificate, pinned by its own hash.
        using var tls = SelfSigned("127.0.0.1");
        await using var kms = new FakeKms(tls);

        using var registrar = Registrar(kms, tls);
        await registrar.UnregisterAsync("greeter", CancellationToken.None);

        Assert.Contains("DELETE /v1/morphisms/functions/greeter", kms.Received);
        Assert.Contains(Token, kms.Received);
    }

    [Fact]
    public async Task ACaIssuedCertificate_PinnedAtItsIssuingCa_GetsTheRequest()
    {
        // A KMS started with --tls-cert from an enterprise CA: the server sends leaf and intermediate, never the root.
        using var root = TestCertificates.Ca("CN=Test Enterprise Root", issuer: null);
        using var intermediate = TestCertificates.Ca("CN=Test KMS CA", issuer: root);
        using var leaf = Leaf("127.0.0.1", signer: intermediate, named: intermediate);
        await using var kms = new FakeKms(leaf, intermediate, root);

        using (var registrar = Registrar(kms, intermediate))
        {
            await registrar.UnregisterAsync("greeter", CancellationToken.None);
        }

        Assert.Contains(Token, kms.Received);

        using var pinnedAtRoot = Registrar(kms, root);
        var refused = await Assert.ThrowsAsync<InvalidOperationException>(() => pinnedAtRoot.UnregisterAsync("other", CancellationToken.None));
        Assert.Contains("pinned SHA-256", refused.Message);
        Assert.DoesNotContain("other", kms.Received);
    }

    [Fact]
    public async Task ACopyOfThePinnedCaBesideAForgedLeaf_IsRefused_BeforeTheTokenIsSent()
    {
        // An intermediate as the pinned CA, so that the server sends it (TLS servers leave a self-signed root out).
        using var root = TestCertificates.Ca("CN=Test Root", issuer: null);
        using var pinned = TestCertificates.Ca("CN=Test KMS CA", issuer: root);

        // The impostor's CA has the same name, and its leaf names the pinned CA's key as its issuer: only the
        // signature tells them apart. The host used to accept this chain because the pinned certificate was in it.
        using var impostor = TestCertificates.Ca("CN=Test KMS CA", issuer: null);
        using var forged = Leaf("127.0.0.1", signer: impostor, named: pinned);
        await using var kms = new FakeKms(forged, pinned);

        using var registrar = Registrar(kms, pinned);
        var refused = await Assert.ThrowsAsync<InvalidOperationException>(() => registrar.UnregisterAsync("greeter", CancellationToken.None));

        Assert.Contains("refusing the KMS", refused.Message);
        Assert.Contains("does not validate to the pinned CA", refused.Message);
        Assert.Contains("signature", refused.Message, StringComparison.OrdinalIgnoreCase);
        Assert.DoesNotContain(Token, kms.Received);
        Assert.DoesNotContain(Token, refused.ToString());
    }

    [Fact]
    public async Task AnotherCertificate_OrAnotherName_IsRefused()
    {
        using var tls = SelfSigned("127.0.0.1");
        using var other = SelfSigned("127.0.0.1");
        await using (var kms = new FakeKms(tls))
        {
            using var registrar = Registrar(kms, other);
            var refused = await Assert.ThrowsAsync<InvalidOperationException>(() => registrar.UnregisterAsync("greeter", CancellationToken.None));
            Assert.Contains("pinned SHA-256", refused.Message);
            Assert.DoesNotContain(Token, kms.Received);
        }

        using var elsewhere = SelfSigned("kms.example");
        await using (var kms = new FakeKms(elsewhere))
        {
            using var registrar = Registrar(kms, elsewhere);
            var refused = await Assert.ThrowsAsync<InvalidOperationException>(() => registrar.UnregisterAsync("greeter", CancellationToken.None));
            Assert.Contains("host name", refused.Message);
            Assert.DoesNotContain(Token, kms.Received);
        }
    }

    [Theory]
    [InlineData("secret/data/x\" { capabilities = [\"read\"] } path \"sys/*")]
    [InlineData("secret/data/*")]
    [InlineData("secret/data/+")]
    [InlineData("secret/data/../../sys/policies/acl/root")]
    [InlineData("secret/data/x\npath")]
    [InlineData("secret/x")]
    public async Task ASecretPathThatCouldInjectPolicyRules_IsRefused_BeforeAnythingIsSent(string secretPath)
    {
        // A spec built in code skips the loader's check; the registrar checks again before it writes the policy.
        using var tls = SelfSigned("127.0.0.1");
        await using var kms = new FakeKms(tls);
        using var registrar = Registrar(kms, tls);

        var refused = await Assert.ThrowsAsync<InvalidOperationException>(() => registrar.RegisterAsync([SimRevision(secretPath)], CancellationToken.None));

        Assert.Contains("refusing to register greeter: its secret path", refused.Message);
        Assert.Equal(string.Empty, kms.Received);
    }

    [Fact]
    public async Task APlainSecretPath_IsRegistered()
    {
        using var tls = SelfSigned("127.0.0.1");
        await using var kms = new FakeKms(tls);
        using var registrar = Registrar(kms, tls);

        await registrar.RegisterAsync([SimRevision("secret/data/greeter")], CancellationToken.None);

        Assert.Contains("PUT /v1/sys/policies/acl/morph-fn-greeter", kms.Received);
        Assert.Contains("PUT /v1/morphisms/functions/greeter", kms.Received);
    }

    private static Revision SimRevision(string secretPath) => new(
        "greeter-00001",
        1,
        new FunctionSpec { Name = "greeter", Bundle = "/nonexistent", Command = ["./app"], Secrets = secretPath },
        [],
        new string('0', 96),
        DateTimeOffset.UnixEpoch);

    private static KmsRegistrar Registrar(FakeKms kms, X509Certificate2 pinned) => new(new KmsConnection
    {
        Url = new Uri($"https://127.0.0.1:{kms.Port}/"),
        CaSha256 = Convert.ToHexStringLower(SHA256.HashData(pinned.RawData)),
        Token = Token,
    }, TimeProvider.System);

    private static X509Certificate2 SelfSigned(string host)
    {
        using var key = ECDsa.Create(ECCurve.NamedCurves.nistP256);
        var request = TlsRequest(host, key);
        using var certificate = request.CreateSelfSigned(DateTimeOffset.UtcNow.AddHours(-1), DateTimeOffset.UtcNow.AddHours(1));
        return Usable(certificate);
    }

    /// <summary>A TLS leaf for <paramref name="host"/>, signed by <paramref name="signer"/>, naming <paramref name="named"/>'s key as its issuer.</summary>
    private static X509Certificate2 Leaf(string host, X509Certificate2 signer, X509Certificate2 named)
    {
        using var key = ECDsa.Create(ECCurve.NamedCurves.nistP256);
        var request = TlsRequest(host, key);
        request.CertificateExtensions.Add(X509AuthorityKeyIdentifierExtension.CreateFromCertificate(named, true, false));
        using var issued = request.Create(signer, DateTimeOffset.UtcNow.AddHours(-1), DateTimeOffset.UtcNow.AddHours(1), RandomNumberGenerator.GetBytes(8));
        using var withKey = issued.CopyWithPrivateKey(key);
        return Usable(withKey);
    }

    private static CertificateRequest TlsRequest(string host, ECDsa key)
    {
        var request = new CertificateRequest("CN=morphisms-kms", key, HashAlgorithmName.SHA256);
        var san = new SubjectAlternativeNameBuilder();
        if (IPAddress.TryParse(host, out var address))
        {
            san.AddIpAddress(address);
        }
        else
        {
            san.AddDnsName(host);
        }

        request.CertificateExtensions.Add(san.Build());
        return request;
    }

    // Round-trip through PKCS#12 so SslStream on Linux can use the private key.
    private static X509Certificate2 Usable(X509Certificate2 withKey) => X509CertificateLoader.LoadPkcs12(withKey.Export(X509ContentType.Pkcs12), null);

    /// <summary>A TLS server that presents a given chain, records what it decrypts, and answers every request with 204.</summary>
    private sealed class FakeKms : IAsyncDisposable
    {
        private readonly TcpListener _listener = new(IPAddress.Loopback, 0);
        private readonly SslStreamCertificateContext _context;
        private readonly StringBuilder _received = new();
        private readonly CancellationTokenSource _stop = new();
        private readonly Task _serving;

        public FakeKms(X509Certificate2 leaf, params X509Certificate2[] chain)
        {
            _context = SslStreamCertificateContext.Create(leaf, [.. chain], offline: true);
            _listener.Start();
            Port = ((IPEndPoint)_listener.LocalEndpoint).Port;
            _serving = ServeAsync();
        }

        public int Port { get; }

        public string Received
        {
            get
            {
                lock (_received)
                {
                    return _received.ToString();
                }
            }
        }

        public async ValueTask DisposeAsync()
        {
            await _stop.CancelAsync();
            _listener.Stop();
            await _serving;
            _stop.Dispose();
        }

        private async Task ServeAsync()
        {
            while (!_stop.IsCancellationRequested)
            {
                TcpClient client;
                try
                {
                    client = await _listener.AcceptTcpClientAsync(_stop.Token);
                }
                catch (Exception e) when (e is OperationCanceledException or SocketException or ObjectDisposedException)
                {
                    return;
                }

                using (client)
                {
                    await AnswerAsync(client);
                }
            }
        }

        private async Task AnswerAsync(TcpClient client)
        {
            try
            {
                await using var ssl = new SslStream(client.GetStream());
                await ssl.AuthenticateAsServerAsync(new SslServerAuthenticationOptions { ServerCertificateContext = _context }, _stop.Token);
                var buffer = new byte[16 * 1024];
                var request = new StringBuilder();
                while (!request.ToString().Contains("\r\n\r\n", StringComparison.Ordinal))
                {
                    var read = await ssl.ReadAsync(buffer, _stop.Token);
                    if (read == 0)
                    {
                        break;
                    }

                    request.Append(Encoding.UTF8.GetString(buffer, 0, read));
                    lock (_received)
                    {
                        _received.Append(Encoding.UTF8.GetString(buffer, 0, read));
                    }
                }

                await ssl.WriteAsync("HTTP/1.1 204 No Content\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"u8.ToArray(), _stop.Token);
            }
            catch (Exception e) when (e is IOException or AuthenticationException or OperationCanceledException or SocketException)
            {
                // A client that refused the chain ends the handshake with an alert: nothing to record.
            }
        }
    }
}
