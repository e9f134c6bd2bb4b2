using System.Net;
using System.Net.Sockets;
using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;
using System.Text;
using Morphisms.Client.Functions;

namespace Morphisms.Client.Tests;

public sealed class VerifiedChainCacheTests : IDisposable
{
    private const string Host = "signer.fn.morphisms.local";
    private readonly TestPki _pki = new();
    private readonly byte[] _measurement = SHA384.HashData("signer bundle"u8);

    public void Dispose() => _pki.Dispose();

    private FunctionExpectation Expect(string function = "signer", FunctionMeasurementPin? measurement = null) =>
        new() { Function = function, Host = Host, AllowSimulated = true, Measurement = measurement };

    private IReadOnlyList<string> Validate(X509Certificate2 leaf, VerifiedChainCache cache, DateTimeOffset? at = null,
        FunctionExpectation? expectation = null, X509Certificate2? root = null, IReadOnlyList<X509Certificate2>? presented = null) =>
        FunctionCertificateValidator.Validate(leaf, presented ?? [_pki.Intermediate], root ?? _pki.Root, expectation ?? Expect(),
            at ?? DateTimeOffset.UtcNow, cache, revocation: null, out _);

    [Fact]
    public void A_chain_is_built_once_then_answered_from_the_cache()
    {
        var cache = new VerifiedChainCache();
        using var leaf = _pki.Leaf("signer", Host, _measurement);

        Assert.Empty(Validate(leaf, cache));
        Assert.Empty(Validate(leaf, cache));
        Assert.Empty(Validate(leaf, cache));

        Assert.Equal((1, 2, 1), (cache.Misses, cache.Hits, cache.Count));
    }

    [Fact]
    public void A_cached_chain_still_gets_its_host_and_identity_checked()
    {
        var cache = new VerifiedChainCache();
        using var leaf = _pki.Leaf("signer", Host, _measurement);
        Assert.Empty(Validate(leaf, cache));

        Assert.Contains(Validate(leaf, cache, expectation: Expect(function: "hello")), f => f.Contains("belongs to function 'signer'", StringComparison.Ordinal));
        Assert.Contains(Validate(leaf, cache, expectation: Expect(measurement: FunctionMeasurementPin.Snp(new byte[48]))), f => f.Contains("not the expected", StringComparison.Ordinal));
        Assert.Contains(Validate(leaf, cache, expectation: Expect() with { Host = "evil.example" }), f => f.StartsWith("host:", StringComparison.Ordinal));
        Assert.Equal(3, cache.Hits);
    }

    [Fact]
    public void A_cached_chain_is_refused_outside_the_validity_of_its_certificates()
    {
        var cache = new VerifiedChainCache();
        using var leaf = _pki.Leaf("signer", Host, _measurement, lifetime: TimeSpan.FromMinutes(10));
        Assert.Empty(Validate(leaf, cache));

        // The leaf was made valid from five minutes ago to ten minutes from now.
        Assert.Contains(Validate(leaf, cache, at: DateTimeOffset.UtcNow.AddHours(1)), f => f.StartsWith("chain:", StringComparison.Ordinal));
        Assert.Contains(Validate(leaf, cache, at: DateTimeOffset.UtcNow.AddHours(-1)), f => f.StartsWith("chain:", StringComparison.Ordinal));
        Assert.Equal(0, cache.Hits);
    }

    [Fact]
    public void Another_root_or_other_presented_certificates_are_checked_afresh()
    {
        var cache = new VerifiedChainCache();
        using var leaf = _pki.Leaf("signer", Host, _measurement);
        Assert.Empty(Validate(leaf, cache));

        // The same leaf and intermediate, pinned to another KMS: not this entry.
        using var other = new TestPki();
        Assert.Contains(Validate(leaf, cache, root: other.Root), f => f.StartsWith("chain:", StringComparison.Ordinal));

        // One more presented certificate is another input, built again (and valid: the extra one is ignored).
        Assert.Empty(Validate(leaf, cache, presented: [_pki.Intermediate, other.Intermediate]));
        Assert.Equal((0, 3, 2), (cache.Hits, cache.Misses, cache.Count));
    }

    [Fact]
    public void Refused_chains_are_not_remembered()
    {
        var cache = new VerifiedChainCache();
        using var other = new TestPki();
        using var foreign = other.Leaf("signer", Host, _measurement);

        Assert.Contains(Validate(foreign, cache, presented: [other.Intermediate]), f => f.StartsWith("chain:", StringComparison.Ordinal));
        Assert.Contains(Validate(foreign, cache, presented: [other.Intermediate]), f => f.StartsWith("chain:", StringComparison.Ordinal));
        Assert.Equal((0, 2, 0), (cache.Hits, cache.Misses, cache.Count));
    }

    [Fact]
    public void The_cache_keeps_no_more_than_its_capacity()
    {
        var cache = new VerifiedChainCache(capacity: 2);
        for (var i = 0; i < 5; i++)
        {
            using var leaf = _pki.Leaf("signer", Host, _measurement);
            Assert.Empty(Validate(leaf, cache));
            Assert.InRange(cache.Count, 1, 2);
        }
    }

    [Fact]
    public async Task A_missing_intermediate_is_not_downloaded_from_the_address_the_leaf_names()
    {
        // The intermediate is really served at the leaf's caIssuers address, so a validator that fetched it would build.
        // Its name is the test's own: .NET keeps what it downloads in the user's CA store, where a broken build would
        // otherwise leave a "Test KMS Intermediate 1" that shadows every other test's.
        var (intermediate, intermediateKey) = _pki.NewIntermediate($"CN=AIA test intermediate {Guid.NewGuid():N}");
        using var issuer = intermediate;
        using var issuerKey = intermediateKey;
        var fetched = 0;
        using var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        var port = ((IPEndPoint)listener.LocalEndpoint).Port;
        var accepting = listener.AcceptTcpClientAsync();
        var serving = Task.Run(async () =>
        {
            try
            {
                using var client = await accepting;
                Interlocked.Increment(ref fetched);
                var stream = client.GetStream();
                var request = new byte[4096];
                _ = await stream.ReadAsync(request); // the request line is enough: one thing is served here
                var der = intermediate.RawData;
                await stream.WriteAsync(Encoding.ASCII.GetBytes($"HTTP/1.1 200 OK\r\nContent-Type: application/pkix-cert\r\nContent-Length: {der.Length}\r\nConnection: close\r\n\r\n"));
                await stream.WriteAsync(der);
            }
            catch (ObjectDisposedException)
            {
            }
            catch (SocketException)
            {
            }
        });

        using var leaf = LeafNamingItsIssuerAt($"http://127.0.0.1:{port}/intermediate.cer", intermediate, intermediateKey);
        var failures = Validate(leaf, new VerifiedChainCache(), presented: []);

        listener.Stop();
        await serving;
        Assert.Contains(failures, f => f.StartsWith("chain:", StringComparison.Ordinal));
        Assert.Equal(0, fetched);
    }

    private X509Certificate2 LeafNamingItsIssuerAt(string url, X509Certificate2 issuer, ECDsa issuerKey)
    {
        using var key = ECDsa.Create(ECCurve.NamedCurves.nistP256);
        var request = new CertificateRequest($"CN={Host}", key, HashAlgorithmName.SHA256);
        var san = new SubjectAlternativeNameBuilder();
        san.AddDnsName(Host);
        request.CertificateExtensions.Add(san.Build());
        request.CertificateExtensions.Add(new X509AuthorityInformationAccessExtension(ocspUris: null, caIssuersUris: [url]));
        request.CertificateExtensions.Add(new Attestation.Identity.AttestedIdentityExtension("snp", _measurement, "signer", 1, SHA256.HashData(_measurement), true).ToExtension());
        var now = DateTimeOffset.UtcNow;
        return request.Create(issuer.SubjectName, X509SignatureGenerator.CreateForECDsa(issuerKey), now.AddMinutes(-5), now.AddHours(1), RandomNumberGenerator.GetBytes(8));
    }
}
