using System.Net;
using System.Net.Security;
using System.Net.Sockets;
using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;
using System.Text;
using Morphisms.Attestation.Identity;
using Morphisms.Client.Functions;
using Morphisms.Client.Trust;

namespace Morphisms.Client.Tests;

public sealed class FunctionHttpHandlerTests : IDisposable
{
    private const string Host = "signer.fn.morphisms.local";
    private readonly TestPki _pki = new();

    public void Dispose() => _pki.Dispose();

    [Fact]
    public async Task Requests_reach_a_function_whose_certificate_chains_to_the_pinned_root()
    {
        using var leaf = _pki.Leaf("signer", Host, new byte[48]);
        await using var server = HttpsFunction(leaf, _pki.Intermediate);
        AttestedIdentityExtension? seen = null;
        using var http = Client(new FunctionExpectation { Function = "signer", Host = Host, AllowSimulated = true }, server.Endpoint.Port, identity => seen = identity);

        Assert.Equal("signed", await http.GetStringAsync($"https://{Host}/"));
        Assert.Equal("signer", seen!.Function);
    }

    [Fact]
    public async Task A_function_with_another_identity_gets_no_request()
    {
        using var leaf = _pki.Leaf("hello", Host, new byte[48]);
        await using var server = HttpsFunction(leaf, _pki.Intermediate);
        IReadOnlyList<string>? refused = null;
        using var http = Client(new FunctionExpectation { Function = "signer", Host = Host, AllowSimulated = true }, server.Endpoint.Port, rejected: f => refused = f);

        await Assert.ThrowsAsync<HttpRequestException>(() => http.GetStringAsync($"https://{Host}/"));
        Assert.Contains(refused!, f => f.Contains("'hello'", StringComparison.Ordinal));
        Assert.Equal(0, server.RequestsServed);
    }

    [Fact]
    public async Task A_function_whose_certificate_chains_to_another_root_gets_no_request()
    {
        // The handshake builds without an anchor and its verdict is ignored: the validator's build to the pin must refuse this.
        using var other = new TestPki();
        using var leaf = other.Leaf("signer", Host, new byte[48]);
        await using var server = HttpsFunction(leaf, other.Intermediate);
        IReadOnlyList<string>? refused = null;
        using var http = Client(new FunctionExpectation { Function = "signer", Host = Host, AllowSimulated = true }, server.Endpoint.Port, rejected: f => refused = f);

        await Assert.ThrowsAsync<HttpRequestException>(() => http.GetStringAsync($"https://{Host}/"));
        Assert.Contains(refused!, f => f.StartsWith("chain:", StringComparison.Ordinal));
        Assert.Equal(0, server.RequestsServed);
    }

    [Fact]
    public async Task A_handler_on_another_clock_checks_expiry_at_that_clocks_time()
    {
        using var leaf = _pki.Leaf("signer", Host, new byte[48], lifetime: TimeSpan.FromHours(1));
        await using var server = HttpsFunction(leaf, _pki.Intermediate);
        IReadOnlyList<string>? refused = null;
        var later = new FixedClock(DateTimeOffset.UtcNow.AddHours(2));
        using var http = Client(new FunctionExpectation { Function = "signer", Host = Host, AllowSimulated = true }, server.Endpoint.Port, rejected: f => refused = f, time: later);

        await Assert.ThrowsAsync<HttpRequestException>(() => http.GetStringAsync($"https://{Host}/"));
        Assert.Contains(refused!, f => f.StartsWith("chain:", StringComparison.Ordinal));
    }

    [Fact]
    public async Task Connections_after_the_first_to_an_instance_take_its_chain_from_the_cache()
    {
        // Separate handlers, as separate callers in one process have: the chain cache is what they share.
        using var leaf = _pki.Leaf("signer", Host, new byte[48]);
        await using var server = HttpsFunction(leaf, _pki.Intermediate);
        var cache = new VerifiedChainCache();
        var verified = 0;
        for (var i = 0; i < 3; i++)
        {
            using var http = Client(new FunctionExpectation { Function = "signer", Host = Host, AllowSimulated = true }, server.Endpoint.Port, _ => verified++, cache: cache);
            Assert.Equal("signed", await http.GetStringAsync($"https://{Host}/"));
        }

        Assert.Equal((3, 1, 2), (verified, cache.Misses, cache.Hits));

        // The cache does not stand in for the identity check: the same chain, expected as another function, is refused.
        IReadOnlyList<string>? refused = null;
        using (var wrong = Client(new FunctionExpectation { Function = "hello", Host = Host, AllowSimulated = true }, server.Endpoint.Port, rejected: f => refused = f, cache: cache))
        {
            await Assert.ThrowsAsync<HttpRequestException>(() => wrong.GetStringAsync($"https://{Host}/"));
        }

        Assert.Contains(refused!, f => f.Contains("'signer'", StringComparison.Ordinal));
        Assert.Equal(3, cache.Hits);
        Assert.Equal(3, server.RequestsServed);
    }

    /// <summary>
    /// A request in plain http has no TLS handshake and so no certificate to check: it used to go out in clear to whatever
    /// answered, with no check at all and no onVerified. It is refused before the CRL warm-up and before the connection,
    /// with revocation required or off alike.
    /// </summary>
    [Theory]
    [InlineData(RevocationCheck.Required)]
    [InlineData(RevocationCheck.Off)]
    public async Task A_request_that_is_not_https_is_refused_before_the_warm_up_and_the_connection(RevocationCheck check)
    {
        using var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        var crls = new StaticCrlSource(_pki.Crl());
        var verified = 0;
        var rejected = 0;
        using var handler = FunctionHttpHandler.Create(Trust(), new FunctionExpectation { Function = "signer", Host = Host, AllowSimulated = true },
            onVerified: _ => verified++, onRejected: _ => rejected++, chainCache: new VerifiedChainCache(),
            revocation: new FunctionRevocationOptions { Check = check, Source = crls, Cache = new FunctionCrlCache(), OnWarning = _ => { } },
            connect: FunctionHttpHandler.ConnectTo(listener.LocalEndpoint));
        // Nothing answers on the listener: a request that did go out would wait for this, not fail at once.
        using var http = new HttpClient(handler) { Timeout = TimeSpan.FromSeconds(10) };

        var failure = await Assert.ThrowsAsync<HttpRequestException>(() => http.GetStringAsync($"http://{Host}/"));

        var refused = Assert.IsType<FunctionNotHttpsException>(failure.InnerException);
        Assert.Equal(new Uri($"http://{Host}/"), refused.RequestUri);
        Assert.StartsWith($"http://{Host}/ is not https: a function connection is verified by its TLS certificate", refused.Message);
        Assert.Contains("nothing was sent", failure.Message);
        Assert.False(listener.Pending(), "a connection was opened for a plain http request");
        Assert.Equal((0, 0), (crls.DefaultCalls, crls.Calls));
        Assert.Equal((0, 0), (verified, rejected));
    }

    /// <summary>
    /// The remarks allow a caller to replace the connect callback (these tests' <see cref="Client"/> does): the check is made
    /// again once connected, so even then not one byte of a plain http request reaches the server.
    /// </summary>
    [Fact]
    public async Task A_request_that_is_not_https_sends_nothing_even_when_the_connect_callback_is_replaced()
    {
        using var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        var port = ((IPEndPoint)listener.LocalEndpoint).Port;
        var received = Task.Run(async () =>
        {
            using var client = await listener.AcceptTcpClientAsync();
            var buffer = new byte[4096];
            var total = 0;
            int read;
            while ((read = await client.GetStream().ReadAsync(buffer)) > 0)
            {
                total += read;
                // Answer, so a request that did go out ends here rather than waiting for the client's timeout.
                await client.GetStream().WriteAsync("HTTP/1.1 200 OK\r\nContent-Length: 5\r\nConnection: close\r\n\r\nclear"u8.ToArray());
                break;
            }

            return total;
        });
        using var http = Client(new FunctionExpectation { Function = "signer", Host = Host, AllowSimulated = true }, port);

        var failure = await Assert.ThrowsAsync<HttpRequestException>(() => http.GetStringAsync($"http://{Host}/"));

        Assert.IsType<FunctionNotHttpsException>(failure.InnerException);
        Assert.Equal(0, await received.WaitAsync(TimeSpan.FromSeconds(10)));
    }

    private HttpClient Client(FunctionExpectation expectation, int port, Action<AttestedIdentityExtension>? verified = null, Action<IReadOnlyList<string>>? rejected = null, TimeProvider? time = null, VerifiedChainCache? cache = null,
        FunctionRevocationOptions? revocation = null)
    {
        var trust = Trust();
        // The KMS here is a name only: its CRL (revoking nothing) comes from the test PKI; FunctionRevocationTests fetch real ones.
        revocation ??= new FunctionRevocationOptions { Source = new StaticCrlSource(_pki.Crl()), Cache = new FunctionCrlCache() };
        var handler = FunctionHttpHandler.Create(trust, expectation, time, onVerified: verified, onRejected: rejected, chainCache: cache ?? new VerifiedChainCache(), revocation: revocation);
        // The host name is a function's, not a DNS entry: connect to the test server whatever it resolves to.
        handler.ConnectCallback = async (_, ct) =>
        {
            var socket = new Socket(SocketType.Stream, ProtocolType.Tcp);
            await socket.ConnectAsync(new IPEndPoint(IPAddress.Loopback, port), ct);
            return new NetworkStream(socket, ownsSocket: true);
        };
        return new HttpClient(handler);
    }

    private KmsTrustRecord Trust() => new()
    {
        KmsUrl = "https://kms.test",
        RootCaPem = _pki.Root.ExportCertificatePem(),
        RootCaSha256 = Convert.ToHexStringLower(SHA256.HashData(_pki.Root.RawData)),
        TlsSpkiSha256 = new string('0', 64),
        Tee = "snp",
        Measurement = "snp:" + new string('0', 96),
        ExpectedMeasurements = ["snp:" + new string('0', 96)],
        Simulated = true,
        VerifiedAt = DateTimeOffset.UtcNow,
    };

    /// <summary>A one-route HTTPS server presenting leaf + intermediate, like an instance's TLS terminator.</summary>
    private static TlsTestServer HttpsFunction(X509Certificate2 leaf, X509Certificate2 intermediate) =>
        new(SslStreamCertificateContext.Create(leaf, [intermediate], offline: true),
            _ => Encoding.ASCII.GetBytes("HTTP/1.1 200 OK\r\nContent-Length: 6\r\nConnection: close\r\n\r\nsigned"));

    private sealed class FixedClock(DateTimeOffset now) : TimeProvider
    {
        public override DateTimeOffset GetUtcNow() => now;
    }
}
