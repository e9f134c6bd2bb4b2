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
/// An HA standby answers the CRL fetch with a 307 to its active node. With the trust store, the fetch follows it as
/// <c>morph kms</c> does — only to the same path over https, on a node whose TLS key the store attests for the same root
/// CA — so a KMS failover does not refuse every function call; any other redirect, or any redirect without a store, is
/// refused naming the target and the <c>morph kms trust</c> command for it. Real TLS on loopback, two servers.
/// </summary>
public sealed class KmsCrlSourceRedirectTests : IDisposable
{
    private const string Host = "signer.fn.morphisms.local";
    private readonly TestPki _pki = new();
    private readonly byte[] _measurement = SHA384.HashData("signer bundle"u8);
    private readonly string _directory = Directory.CreateTempSubdirectory("morph-crl-redirect-").FullName;
    private readonly X509Certificate2 _standbyTls = LoopbackKms.SelfSignedTlsCertificate();
    private readonly X509Certificate2 _activeTls = LoopbackKms.SelfSignedTlsCertificate();

    public void Dispose()
    {
        _pki.Dispose();
        _standbyTls.Dispose();
        _activeTls.Dispose();
        Directory.Delete(_directory, recursive: true);
    }

    private KmsTrustStore Store => new(Path.Combine(_directory, "kms-trust.json"));

    [Fact]
    public async Task A_standbys_redirect_to_a_node_the_store_attests_for_the_same_kms_is_followed()
    {
        using var leaf = _pki.Leaf("signer", Host, _measurement);
        await using var active = Active(_pki.Crl([leaf]));
        await using var standby = Standby(active);
        var standbyRecord = Record(standby, _standbyTls);
        Store.Save(standbyRecord);
        Store.Save(Record(active, _activeTls));

        // The CRL the active node serves (listing the leaf) is the one checked.
        Assert.Contains("is revoked on the KMS's CRL", Assert.Single(Validate(leaf, new KmsCrlSource(standbyRecord, TimeSpan.FromSeconds(5), Store))));
        Assert.Equal((1, 1), (standby.RequestsServed, active.RequestsServed));
    }

    [Fact]
    public async Task FunctionHttpHandler_follows_the_redirect_with_the_trust_store_of_its_options()
    {
        using var leaf = _pki.Leaf("signer", Host, _measurement);
        await using var active = Active(_pki.Crl());
        await using var standby = Standby(active);
        var standbyRecord = Record(standby, _standbyTls);
        Store.Save(standbyRecord);
        Store.Save(Record(active, _activeTls));
        await using var function = new TlsTestServer(SslStreamCertificateContext.Create(leaf, [_pki.Intermediate], offline: true),
            _ => Encoding.ASCII.GetBytes("HTTP/1.1 200 OK\r\nContent-Length: 6\r\nConnection: close\r\n\r\nsigned"));
        IReadOnlyList<string>? refused = null;

        using (var http = Client(standbyRecord, function.Endpoint.Port, new FunctionRevocationOptions { Cache = new FunctionCrlCache(), TrustStore = Store }, f => refused = f))
        {
            Assert.Equal("signed", await http.GetStringAsync($"https://{Host}/"));
        }

        Assert.Null(refused);
        Assert.Equal(1, active.RequestsServed);

        // Without the store, today's behaviour: the redirect is not followed, so the call is refused (fail closed).
        using (var http = Client(standbyRecord, function.Endpoint.Port, new FunctionRevocationOptions { Cache = new FunctionCrlCache() }, f => refused = f))
        {
            await Assert.ThrowsAsync<HttpRequestException>(() => http.GetStringAsync($"https://{Host}/"));
        }

        Assert.Contains("which is not followed without a trust store", Assert.Single(refused!));
        Assert.Equal(1, active.RequestsServed);
    }

    [Fact]
    public async Task A_redirect_to_a_node_whose_key_the_store_does_not_attest_for_this_kms_is_refused_naming_it()
    {
        using var leaf = _pki.Leaf("signer", Host, _measurement);
        await using var active = Active(_pki.Crl());
        await using var standby = Standby(active);
        var standbyRecord = Record(standby, _standbyTls);
        Store.Save(standbyRecord);

        // Its key attested for another KMS (another root CA), or by a record checked less strictly (any measurement, or
        // before measurements were recorded), is no node of this one.
        Store.Save(Record(new Uri("https://other-kms.example:8200"), _activeTls) with { RootCaSha256 = new string('2', 64) });
        Store.Save(Record(new Uri("https://lax.example:8200"), _activeTls) with { ExpectedMeasurements = [], AnyMeasurement = true });
        Store.Save(Record(new Uri("https://legacy.example:8200"), _activeTls) with { ExpectedMeasurements = [] });
        var target = $"https://127.0.0.1:{active.Endpoint.Port}";

        var refused = Assert.Single(Validate(leaf, new KmsCrlSource(standbyRecord, TimeSpan.FromSeconds(5), Store)));
        Assert.Contains($"https://127.0.0.1:{standby.Endpoint.Port} redirected GET /v1/pki/crl/pem to {target}, which is not a node of the KMS pinned for {standbyRecord.KmsUrl}: "
            + $"its TLS key (SPKI sha256 {Spki(_activeTls)}) is not one `morph kms trust` attested", refused);
        Assert.Contains($"trust it by its address while it is active (morph kms trust {target}) and retry", refused);
        Assert.Equal(0, active.RequestsServed);
    }

    [Theory]
    [InlineData("https", "/v1/pki/issuer/forged/crl/pem", "since it names another path than /v1/pki/crl/pem")]
    [InlineData("https", "/v1/pki/crl/pem?x=1", "since it names another path than /v1/pki/crl/pem")]
    [InlineData("http", "/v1/pki/crl/pem", "since plain http cannot show an attested TLS key")]
    public async Task A_redirect_that_changes_more_than_the_node_is_refused(string scheme, string path, string reason)
    {
        using var leaf = _pki.Leaf("signer", Host, _measurement);
        await using var active = Active(_pki.Crl());
        var location = $"{scheme}://127.0.0.1:{active.Endpoint.Port}{path}";
        await using var standby = Redirecting(_ => location);
        var standbyRecord = Record(standby, _standbyTls);
        Store.Save(standbyRecord);
        Store.Save(Record(active, _activeTls));

        var refused = Assert.Single(Validate(leaf, new KmsCrlSource(standbyRecord, TimeSpan.FromSeconds(5), Store)));
        Assert.Contains($"GET /v1/pki/crl/pem was redirected (307) by https://127.0.0.1:{standby.Endpoint.Port} to {location}: not followed, {reason}", refused);
        Assert.Equal(0, active.RequestsServed);
    }

    [Fact]
    public async Task Without_a_store_no_redirect_is_followed()
    {
        using var leaf = _pki.Leaf("signer", Host, _measurement);
        await using var active = Active(_pki.Crl());
        await using var standby = Standby(active);
        var standbyRecord = Record(standby, _standbyTls);

        var refused = Assert.Single(Validate(leaf, new KmsCrlSource(standbyRecord, TimeSpan.FromSeconds(5))));
        Assert.Contains($"GET /v1/pki/crl/pem was redirected (307) by https://127.0.0.1:{standby.Endpoint.Port} to https://127.0.0.1:{active.Endpoint.Port}/v1/pki/crl/pem, "
            + "which is not followed without a trust store", refused);
        Assert.Contains($"(morph kms trust https://127.0.0.1:{active.Endpoint.Port})", refused);
        Assert.Equal(0, active.RequestsServed);
    }

    [Fact]
    public async Task A_redirect_loop_ends_after_the_limit()
    {
        using var leaf = _pki.Leaf("signer", Host, _measurement);
        TlsTestServer? self = null;
        await using var looping = Redirecting(request => $"https://127.0.0.1:{self!.Endpoint.Port}{RequestPath(request)}");
        self = looping;
        var record = Record(looping, _standbyTls);
        Store.Save(record);

        Assert.Contains($"it redirected more than {KmsTlsPin.MaxRedirects} times", Assert.Single(Validate(leaf, new KmsCrlSource(record, TimeSpan.FromSeconds(5), Store))));
        Assert.Equal(KmsTlsPin.MaxRedirects + 1, looping.RequestsServed);
    }

    private IReadOnlyList<string> Validate(X509Certificate2 leaf, IFunctionCrlSource source) =>
        FunctionCertificateValidator.Validate(leaf, [_pki.Intermediate], _pki.Root, new FunctionExpectation { Function = "signer", Host = Host, AllowSimulated = true },
            DateTimeOffset.UtcNow, new VerifiedChainCache(), new FunctionRevocationChecker(new FunctionCrlCache(), source, TimeSpan.FromSeconds(30)), out _);

    private static HttpClient Client(KmsTrustRecord trust, int port, FunctionRevocationOptions revocation, Action<IReadOnlyList<string>> rejected)
    {
        var handler = FunctionHttpHandler.Create(trust, new FunctionExpectation { Function = "signer", Host = Host, AllowSimulated = true }, onRejected: rejected,
            chainCache: new VerifiedChainCache(), revocation: revocation);
        handler.ConnectCallback = async (_, ct) =>
        {
            var socket = new Socket(SocketType.Stream, ProtocolType.Tcp);
            await socket.ConnectAsync(new IPEndPoint(IPAddress.Loopback, port), ct);
            return new NetworkStream(socket, ownsSocket: true);
        };
        return new HttpClient(handler);
    }

    /// <summary>The active node: serves <paramref name="crl"/> (DER) to any request.</summary>
    private TlsTestServer Active(byte[] crl) =>
        new(SslStreamCertificateContext.Create(_activeTls, null), _ =>
            [.. Encoding.ASCII.GetBytes($"HTTP/1.1 200 OK\r\nContent-Type: application/pkix-crl\r\nContent-Length: {crl.Length}\r\nConnection: close\r\n\r\n"), .. crl]);

    /// <summary>A standby: 307 to the same path on <paramref name="active"/>, as a KMS standby answers.</summary>
    private TlsTestServer Standby(TlsTestServer active) => Redirecting(request => $"https://127.0.0.1:{active.Endpoint.Port}{RequestPath(request)}");

    private TlsTestServer Redirecting(Func<byte[], string> location) =>
        new(SslStreamCertificateContext.Create(_standbyTls, null), request =>
            Encoding.ASCII.GetBytes($"HTTP/1.1 307 Temporary Redirect\r\nLocation: {location(request)}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"));

    private static string RequestPath(byte[] request) => Encoding.ASCII.GetString(request).Split(' ', 3)[1];

    private KmsTrustRecord Record(TlsTestServer server, X509Certificate2 tls) => Record(new Uri($"https://127.0.0.1:{server.Endpoint.Port}"), tls);

    private KmsTrustRecord Record(Uri url, X509Certificate2 tls) => LoopbackKms.TrustRecord(url, _pki.Root, tls);

    private static string Spki(X509Certificate2 certificate) => Convert.ToHexStringLower(SHA256.HashData(certificate.PublicKey.ExportSubjectPublicKeyInfo()));
}
