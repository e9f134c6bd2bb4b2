using System.Net;
using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;
using System.Text.Json;
using Morphisms.Attestation.Simulated;
using Morphisms.Cli.Commands.Kms;
using Morphisms.Client.Trust;
using Morphisms.Kms;

namespace Morphisms.Cli.Tests.Kms;

/// <summary>
/// <c>morph kms</c> against an address <c>morph kms trust</c> pinned: the server, and every redirect target, must show a
/// TLS key attested for that KMS (its own record, or the record of another node with the same root CA), whatever else
/// would trust it. A standby's <c>Location</c> comes from the database, so a target that is not such a node gets no token.
/// </summary>
[Collection(MorphismsHomeCollection.Name)]
public sealed class KmsTlsPinTests : IDisposable
{
    private const string Token = "hvs.pin-test-token";
    private const string RootSha256 = "1111111111111111111111111111111111111111111111111111111111111111";
    private static readonly IReadOnlyDictionary<string, string> JsonType = new Dictionary<string, string> { ["Content-Type"] = "application/json" };

    private readonly string _home = Directory.CreateTempSubdirectory("morph-home-").FullName;
    private readonly string? _previousHome = Environment.GetEnvironmentVariable("MORPHISMS_HOME");

    public KmsTlsPinTests() => Environment.SetEnvironmentVariable("MORPHISMS_HOME", _home);

    private string TokenFile
    {
        get
        {
            var file = Path.Combine(_home, "token");
            File.WriteAllText(file, Token);
            return file;
        }
    }

    private KmsTrustStore Store => new(Path.Combine(_home, "config", KmsTrustCommand.TrustFileName));

    /// <summary>
    /// A pinned address whose server shows another TLS key is refused in the handshake, even with a <c>--ca-cert</c> that
    /// trusts that server: the request, and the token, never reach it.
    /// </summary>
    [Fact]
    public async Task A_pinned_kms_showing_another_tls_key_gets_no_request()
    {
        using var attested = SelfSigned();
        using var impostorCertificate = SelfSigned();
        await using var impostor = new FakeHttpServer(_ => new(200, """{"data":{"keys":["stolen"]}}""", JsonType), certificate: impostorCertificate);
        Pin(impostor.Address, attested);
        var caFile = CaFile(impostorCertificate);

        var outcome = await MorphRunner.RunAsync("kms", "policy", "list", "--address", impostor.Address.ToString(), "--token-file", TokenFile, "--ca-cert", caFile);

        Assert.Equal(ExitCodes.Rejected, outcome.ExitCode);
        Assert.Contains($"the KMS at {Authority(impostor.Address)} is not the one pinned for {Authority(impostor.Address)}", outcome.Stderr, StringComparison.Ordinal);
        Assert.Contains($"its TLS key (SPKI sha256 {Spki(impostorCertificate)}) is not one `morph kms trust` attested", outcome.Stderr, StringComparison.Ordinal);
        Assert.Contains($"morph kms trust {Authority(impostor.Address)}", outcome.Stderr, StringComparison.Ordinal);
        Assert.Empty(impostor.Requests);
        ErrorPathTests.AssertNoStackTrace(outcome);
    }

    /// <summary>
    /// A pinned standby's 307 to a host whose key no trust record of this KMS attests is not followed, although
    /// <c>--ca-cert</c> (standing in for the system roots) trusts it: the token stays home.
    /// </summary>
    [Fact]
    public async Task A_redirect_from_a_pinned_kms_to_a_host_it_does_not_attest_gets_no_token()
    {
        using var standbyCertificate = SelfSigned();
        using var evilCertificate = SelfSigned();
        await using var evil = new FakeHttpServer(_ => new(200, """{"data":{"keys":["stolen"]}}""", JsonType), certificate: evilCertificate);
        await using var standby = new FakeHttpServer(r => new(307, "", new Dictionary<string, string> { ["Location"] = new Uri(evil.Address, r.Target).ToString() }), certificate: standbyCertificate);
        Pin(standby.Address, standbyCertificate);

        // A record of another KMS (another root CA) does not make its key a node of this one.
        Pin(new Uri("https://other-kms.example:8200"), evilCertificate, root: new string('2', 64));
        var caFile = CaFile(standbyCertificate, evilCertificate);

        var outcome = await MorphRunner.RunAsync("kms", "policy", "list", "--address", standby.Address.ToString(), "--token-file", TokenFile, "--ca-cert", caFile);

        Assert.Equal(ExitCodes.Rejected, outcome.ExitCode);
        Assert.Contains($"the KMS at {Authority(standby.Address)} redirected to {Authority(evil.Address)}, which is not a node of the KMS pinned for {Authority(standby.Address)}", outcome.Stderr, StringComparison.Ordinal);
        Assert.Contains("the token was not sent", outcome.Stderr, StringComparison.Ordinal);
        Assert.Empty(evil.Requests);
        Assert.Equal(Token, Assert.Single(standby.Requests).Headers["X-Vault-Token"]);
        Assert.DoesNotContain("stolen", outcome.Stdout, StringComparison.Ordinal);
    }

    /// <summary>
    /// A 307 to another node of the pinned KMS (trusted by its own address, same root CA) is followed with the token, and
    /// the pin stands in for the system roots: no <c>--ca-cert</c> is needed for self-signed nodes.
    /// </summary>
    [Fact]
    public async Task A_redirect_to_an_attested_node_of_the_pinned_kms_is_followed()
    {
        using var standbyCertificate = SelfSigned();
        using var activeCertificate = SelfSigned();
        await using var active = new FakeHttpServer(_ => new(200, """{"data":{"keys":["default","root"]}}""", JsonType), certificate: activeCertificate);
        await using var standby = new FakeHttpServer(r => new(307, "", new Dictionary<string, string> { ["Location"] = new Uri(active.Address, r.Target).ToString() }), certificate: standbyCertificate);
        Pin(standby.Address, standbyCertificate);
        Pin(active.Address, activeCertificate);

        var outcome = await MorphRunner.RunAsync("kms", "policy", "list", "--address", standby.Address.ToString(), "--token-file", TokenFile);

        Assert.True(outcome.ExitCode == ExitCodes.Ok, outcome.Stderr);
        Assert.Contains("root", outcome.Stdout, StringComparison.Ordinal);
        Assert.Equal(Token, Assert.Single(active.Requests).Headers["X-Vault-Token"]);
    }

    /// <summary>
    /// A record made with <c>--any-measurement</c> may bind the (public) root CA beside any server's key: it does not
    /// widen the pin of an address trusted with a measurement, so a redirect to that server gets no token.
    /// </summary>
    [Fact]
    public async Task A_record_trusted_without_a_measurement_does_not_widen_a_stricter_pin()
    {
        using var labCertificate = SelfSigned();
        using var productionCertificate = SelfSigned();
        await using var lab = new FakeHttpServer(_ => new(200, """{"data":{"keys":["default"]}}""", JsonType), certificate: labCertificate);
        await using var production = new FakeHttpServer(r => new(307, "", new Dictionary<string, string> { ["Location"] = new Uri(lab.Address, r.Target).ToString() }), certificate: productionCertificate);
        Pin(production.Address, productionCertificate);
        Pin(lab.Address, labCertificate, anyMeasurement: true);

        var outcome = await MorphRunner.RunAsync("kms", "policy", "list", "--address", production.Address.ToString(), "--token-file", TokenFile);

        Assert.NotEqual(ExitCodes.Ok, outcome.ExitCode);
        Assert.Empty(lab.Requests);
        Assert.DoesNotContain(Token, outcome.Stdout + outcome.Stderr, StringComparison.Ordinal);
    }

    /// <summary>
    /// A record with the same root CA, checked as strictly, but whose server attested a measurement the address's own
    /// record does not expect (another KMS build the user trusts elsewhere, which may present any root) does not widen the
    /// pin either: a redirect to that server gets no token. One that attested an expected measurement does.
    /// </summary>
    [Fact]
    public async Task A_record_of_a_measurement_the_pinned_record_does_not_expect_does_not_widen_its_pin()
    {
        using var otherBuildCertificate = SelfSigned();
        using var productionCertificate = SelfSigned();
        await using var otherBuild = new FakeHttpServer(_ => new(200, """{"data":{"keys":["default"]}}""", JsonType), certificate: otherBuildCertificate);
        await using var production = new FakeHttpServer(r => new(307, "", new Dictionary<string, string> { ["Location"] = new Uri(otherBuild.Address, r.Target).ToString() }), certificate: productionCertificate);
        Pin(production.Address, productionCertificate);
        var otherMeasurement = "snp:" + new string('9', 96);
        Pin(otherBuild.Address, otherBuildCertificate, measurement: otherMeasurement);

        var refused = await MorphRunner.RunAsync("kms", "policy", "list", "--address", production.Address.ToString(), "--token-file", TokenFile);

        Assert.Equal(ExitCodes.Rejected, refused.ExitCode);
        Assert.Contains($"redirected to {Authority(otherBuild.Address)}, which is not a node of the KMS pinned for {Authority(production.Address)}", refused.Stderr, StringComparison.Ordinal);
        Assert.Empty(otherBuild.Requests);
        Assert.DoesNotContain(Token, refused.Stdout + refused.Stderr, StringComparison.Ordinal);

        // The production record expecting that build too (an upgrade in progress) makes the node one of its KMS.
        Pin(production.Address, productionCertificate, expected: ["snp:" + new string('0', 96), otherMeasurement]);
        var followed = await MorphRunner.RunAsync("kms", "policy", "list", "--address", production.Address.ToString(), "--token-file", TokenFile);
        Assert.True(followed.ExitCode == ExitCodes.Ok, followed.Stderr);
        Assert.Equal(Token, Assert.Single(otherBuild.Requests).Headers["X-Vault-Token"]);
    }

    /// <summary>Plain http shows no TLS key: from a pinned KMS, a redirect there is refused even on loopback.</summary>
    [Fact]
    public async Task A_redirect_from_a_pinned_kms_to_loopback_http_is_not_followed()
    {
        using var standbyCertificate = SelfSigned();
        await using var plain = new FakeHttpServer(_ => new(200, """{"data":{"keys":["stolen"]}}""", JsonType));
        await using var standby = new FakeHttpServer(r => new(307, "", new Dictionary<string, string> { ["Location"] = new Uri(plain.Address, r.Target).ToString() }), certificate: standbyCertificate);
        Pin(standby.Address, standbyCertificate);

        var outcome = await MorphRunner.RunAsync("kms", "policy", "list", "--address", standby.Address.ToString(), "--token-file", TokenFile);

        Assert.Equal(ExitCodes.Rejected, outcome.ExitCode);
        Assert.Contains("plain http cannot show a pinned TLS key", outcome.Stderr, StringComparison.Ordinal);
        Assert.Empty(plain.Requests);
    }

    /// <summary>A trust store that cannot be read may hold a pin: the command stops (exit 2) rather than fall back to the system roots.</summary>
    [Fact]
    public async Task An_unreadable_trust_store_stops_the_command()
    {
        await using var server = new FakeHttpServer(_ => new(200, """{"data":{"keys":["default"]}}""", JsonType));
        Directory.CreateDirectory(Path.Combine(_home, "config"));
        await File.WriteAllTextAsync(Store.Path, "not json");

        var outcome = await MorphRunner.RunAsync("kms", "policy", "list", "--address", server.Address.ToString(), "--token-file", TokenFile);

        Assert.Equal(ExitCodes.UsageOrInput, outcome.ExitCode);
        Assert.Contains("the KMS trust records cannot be read", outcome.Stderr, StringComparison.Ordinal);
        Assert.Contains("not a Morphisms trust store", outcome.Stderr, StringComparison.Ordinal);
        Assert.Empty(server.Requests);
    }

    /// <summary>End to end: once <c>morph kms trust</c> pinned a dev KMS on self-signed TLS, <c>morph kms</c> reaches it without <c>--ca-cert</c>.</summary>
    [Fact]
    public async Task After_morph_kms_trust_the_pinned_kms_needs_no_ca_cert()
    {
        using var tee = SimulatedTeeAuthority.LoadOrCreate(Path.Combine(_home, "data", "simulated-tee"), TimeProvider.System);
        await using var kms = new KmsServer(new KmsServerOptions
        {
            Listen = "127.0.0.1:0",
            Storage = "inmem",
            Dev = true,
            Tls = KmsTlsOptions.SelfSigned,
            WarningWriter = TextWriter.Null,
            Attestation = new KmsAttestationOptions { SimulatedTee = tee, TrustSimulatedTee = true },
        });
        await kms.StartAsync();
        var url = kms.BaseAddress!.ToString();

        var unpinned = await MorphRunner.RunAsync("kms", "status", "--address", url);
        Assert.Equal(ExitCodes.Rejected, unpinned.ExitCode); // a self-signed certificate: the system roots refuse it
        // Said with its cause and the command that fixes it (run next), not .NET's "see inner exception".
        var authority = kms.BaseAddress.GetLeftPart(UriPartial.Authority);
        Assert.Contains($"morph: the KMS's certificate at {authority} is not trusted (", unpinned.Stderr, StringComparison.Ordinal);
        Assert.Contains($"Run `morph kms trust {authority}` first (--dev for a dev KMS of this installation", unpinned.Stderr, StringComparison.Ordinal);
        Assert.DoesNotContain("see inner exception", unpinned.Stderr, StringComparison.Ordinal);

        var trusted = await MorphRunner.RunAsync("kms", "trust", url, "--dev");
        Assert.True(trusted.ExitCode == ExitCodes.Ok, trusted.Stderr);
        var status = await MorphRunner.RunAsync("kms", "status", "--address", url, "--json");
        Assert.True(status.ExitCode == ExitCodes.Ok, status.Stderr);
        Assert.Equal(Store.Find(url)!.RootCaSha256, JsonDocument.Parse(status.Stdout).RootElement.GetProperty("root_ca_sha256").GetString());
    }

    public void Dispose()
    {
        Environment.SetEnvironmentVariable("MORPHISMS_HOME", _previousHome);
        Directory.Delete(_home, recursive: true);
    }

    /// <summary>Stores a trust record for <paramref name="url"/> as <c>morph kms trust</c> would, attesting <paramref name="tls"/>'s key.</summary>
    /// <remarks>
    /// Its server attested <paramref name="measurement"/> (all zeros unless told), and the record expects
    /// <paramref name="expected"/> (that measurement unless told), or any with <paramref name="anyMeasurement"/>.
    /// </remarks>
    private void Pin(Uri url, X509Certificate2 tls, string root = RootSha256, bool anyMeasurement = false, string? measurement = null, string[]? expected = null)
    {
        using var ca = TestCertificates.Ca("CN=test KMS root");
        var attested = measurement ?? "snp:" + new string('0', 96);
        Store.Save(new KmsTrustRecord
        {
            KmsUrl = KmsTrustStore.Normalize(url.ToString()),
            RootCaPem = ca.ExportCertificatePem(),
            RootCaSha256 = root,
            TlsSpkiSha256 = Spki(tls),
            Tee = "snp",
            Measurement = attested,
            ExpectedMeasurements = anyMeasurement ? [] : expected ?? [attested],
            AnyMeasurement = anyMeasurement,
            Simulated = true,
            RootCaKeyProven = true,
            VerifiedAt = DateTimeOffset.UtcNow,
        });
    }

    private string CaFile(params X509Certificate2[] certificates)
    {
        var file = Path.Combine(_home, $"ca-{Guid.NewGuid():N}.pem");
        File.WriteAllText(file, string.Concat(certificates.Select(c => c.ExportCertificatePem() + "\n")));
        return file;
    }

    private static string Spki(X509Certificate2 certificate) => Convert.ToHexStringLower(SHA256.HashData(certificate.PublicKey.ExportSubjectPublicKeyInfo()));

    private static string Authority(Uri address) => address.GetLeftPart(UriPartial.Authority);

    /// <summary>A self-signed certificate for 127.0.0.1, as a KMS node with <c>--tls-self</c> or its own file has.</summary>
    private static X509Certificate2 SelfSigned()
    {
        using var key = ECDsa.Create(ECCurve.NamedCurves.nistP256);
        var request = new CertificateRequest("CN=127.0.0.1", key, HashAlgorithmName.SHA256);
        var names = new SubjectAlternativeNameBuilder();
        names.AddIpAddress(IPAddress.Loopback);
        request.CertificateExtensions.Add(names.Build());
        return request.CreateSelfSigned(DateTimeOffset.UtcNow.AddMinutes(-5), DateTimeOffset.UtcNow.AddHours(1));
    }
}
