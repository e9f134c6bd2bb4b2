using System.Net;
using System.Net.Security;
using System.Net.Sockets;
using System.Security.Cryptography;
using System.Security.Authentication;
using System.Security.Cryptography.X509Certificates;
using System.Text;
using Morphisms.Attestation.Trust;
using Morphisms.Serving.Hosting;
using Morphisms.Serving.Revisions;
using Morphisms.Serving.Spec;
using Morphisms.Testing;

namespace Morphisms.Serving.Tests.Hosting;

/// <summary>
/// The serving host sends a token that may write policies to the KMS, so its pin must hold against an impostor
/// that presents a copy of the (public) pinned CA certificate beside a leaf of its own, and it follows no redirect but
/// an HA standby's to the same request on its active node. And the policy it writes must never carry rules smuggled
/// in through a function's secret path.
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
    [InlineData(307)]
    [InlineData(308)]
    public async Task AStandbysRedirect_ToTheSameRequestOnThePinnedActiveNode_IsFollowed(int status)
    {
        using var tls = SelfSigned("127.0.0.1");
        await using var active = new FakeKms(tls);
        await using var standby = new FakeKms(tls) { Answer = request => Redirect(status, $"https://127.0.0.1:{active.Port}{Target(request)}") };

        using var registrar = Registrar(standby, tls);
        await registrar.UnregisterAsync("greeter", CancellationToken.None);

        Assert.Contains("DELETE /v1/morphisms/functions/greeter HTTP/1.1", active.Received);
        Assert.Contains(Token, active.Received);
    }

    [Theory]
    // Another path on a node the pin accepts: HttpClient's own redirects re-sent X-Vault-Token there (they strip only
    // Authorization), turning an unregister into whatever the Location names.
    [InlineData(307, "/v1/sys/policies/acl/root", "another path than /v1/morphisms/functions/greeter")]
    [InlineData(307, "/v1/morphisms/functions/greeter?x=1", "another path than /v1/morphisms/functions/greeter")]
    // 301/302/303 are no standby's (and would turn a PUT into a GET).
    [InlineData(302, "/v1/morphisms/functions/greeter", "only a 307 or 308 with a Location is")]
    [InlineData(301, "/v1/morphisms/functions/greeter", "only a 307 or 308 with a Location is")]
    public async Task AnyOtherRedirect_IsNotFollowed_AndTheTokenGoesNowhere(int status, string path, string reason)
    {
        using var tls = SelfSigned("127.0.0.1");
        await using var elsewhere = new FakeKms(tls);
        await using var standby = new FakeKms(tls) { Answer = _ => Redirect(status, $"https://127.0.0.1:{elsewhere.Port}{path}") };

        using var registrar = Registrar(standby, tls);
        var refused = await Assert.ThrowsAsync<InvalidOperationException>(() => registrar.UnregisterAsync("greeter", CancellationToken.None));

        Assert.Contains(reason, refused.Message, StringComparison.Ordinal);
        Assert.Equal(string.Empty, elsewhere.Received);
    }

    [Fact]
    public async Task ARedirectToPlainHttp_IsNotFollowed()
    {
        using var tls = SelfSigned("127.0.0.1");
        await using var standby = new FakeKms(tls) { Answer = request => Redirect(307, $"http://127.0.0.1:1{Target(request)}") };

        using var registrar = Registrar(standby, tls);
        var refused = await Assert.ThrowsAsync<InvalidOperationException>(() => registrar.UnregisterAsync("greeter", CancellationToken.None));

        Assert.Contains("only https can show the pinned certificate", refused.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task ARedirectToAServerThePinRefuses_IsRefusedInItsHandshake_BeforeTheTokenIsSent()
    {
        using var tls = SelfSigned("127.0.0.1");
        using var other = SelfSigned("127.0.0.1");
        await using var impostor = new FakeKms(other);
        await using var standby = new FakeKms(tls) { Answer = request => Redirect(307, $"https://127.0.0.1:{impostor.Port}{Target(request)}") };

        using var registrar = Registrar(standby, tls);
        var refused = await Assert.ThrowsAsync<InvalidOperationException>(() => registrar.UnregisterAsync("greeter", CancellationToken.None));

        Assert.Contains($"redirected DELETE v1/morphisms/functions/greeter to https://127.0.0.1:{impostor.Port}, which is not the pinned KMS", refused.Message, StringComparison.Ordinal);
        Assert.Equal(string.Empty, impostor.Received);
    }

    [Fact]
    public async Task MoreThanThreeRedirects_AreNotFollowed()
    {
        using var tls = SelfSigned("127.0.0.1");
        FakeKms? self = null;
        await using var looping = new FakeKms(tls) { Answer = request => Redirect(307, $"https://127.0.0.1:{self!.Port}{Target(request)}") };
        self = looping;

        using var registrar = Registrar(looping, tls);
        var refused = await Assert.ThrowsAsync<InvalidOperationException>(() => registrar.UnregisterAsync("greeter", CancellationToken.None));

        Assert.Contains($"redirected more than {KmsRedirect.MaxRedirects} times", refused.Message, StringComparison.Ordinal);
        Assert.Equal(KmsRedirect.MaxRedirects + 1, looping.Received.Split("DELETE ").Length - 1);
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

    private static string Redirect(int status, string location) => $"HTTP/1.1 {status} Redirect\r\nLocation: {location}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n";

    // The request target of the request line, as sent.
    private static string Target(string request) => request.Split(' ', 3)[1];

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

    /// <summary>A TLS server that presents a given chain, records what it decrypts, and answers every request with 204 (or <see cref="Answer"/>'s).</summary>
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

        /// <summary>The whole HTTP answer to a request, given its text up to the end of its headers; null: 204.</summary>
        public Func<string, string>? Answer { get; init; }

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

                var answer = Answer?.Invoke(request.ToString()) ?? "HTTP/1.1 204 No Content\r\nContent-Length: 0\r\nConnection: close\r\n\r\n";
                await ssl.WriteAsync(Encoding.ASCII.GetBytes(answer), _stop.Token);
            }
            catch (Exception e) when (e is IOException or AuthenticationException or OperationCanceledException or SocketException)
            {
                // A client that refused the chain ends the handshake with an alert: nothing to record.
            }
        }
    }
}
