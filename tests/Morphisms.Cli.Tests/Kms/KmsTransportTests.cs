using System.Net;
using System.Net.NetworkInformation;
using System.Net.Sockets;
using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;
using System.Text.Json.Nodes;
using Morphisms.Cli.Commands.Kms;

namespace Morphisms.Cli.Tests.Kms;

/// <summary>
/// Where <c>morph kms</c> sends a token: https anywhere, plain http only on loopback, and a redirect only where the
/// first request could have gone (never replaying <c>X-Vault-Token</c> to a plain-http host elsewhere).
/// </summary>
public sealed class KmsTransportTests : IDisposable
{
    private const string Token = "hvs.transport-test-token";
    private static readonly IReadOnlyDictionary<string, string> JsonType = new Dictionary<string, string> { ["Content-Type"] = "application/json" };

    private readonly string _dir = Directory.CreateTempSubdirectory("morph-kms-transport-").FullName;

    private string TokenFile
    {
        get
        {
            var file = Path.Combine(_dir, "token");
            File.WriteAllText(file, Token);
            return file;
        }
    }

    [Theory]
    [InlineData("https://kms.example:8200", true)]
    [InlineData("https://10.0.0.5:8200", true)]
    [InlineData("http://127.0.0.1:8200", true)]
    [InlineData("http://127.1.2.3:8200", true)]
    [InlineData("http://localhost:8200", true)]
    [InlineData("http://[::1]:8200", true)]
    [InlineData("http://kms.example:8200", false)]
    [InlineData("http://10.0.0.5:8200", false)]
    [InlineData("http://localhost.example:8200", false)]
    [InlineData("ftp://127.0.0.1", false)]
    public void Only_https_or_loopback_http_may_carry_secrets(string address, bool allowed) =>
        Assert.Equal(allowed, KmsHttp.MayCarrySecrets(new Uri(address)));

    [Theory]
    [InlineData("http://kms.example:8200")]
    [InlineData("http://192.0.2.7:8200")]
    public async Task Plain_http_to_another_machine_is_refused_before_anything_is_sent(string address)
    {
        var outcome = await MorphRunner.RunAsync("kms", "policy", "list", "--address", address, "--token-file", TokenFile);
        Assert.Equal(ExitCodes.UsageOrInput, outcome.ExitCode);
        Assert.Contains("plain http to another machine", outcome.Stderr, StringComparison.Ordinal);
        Assert.DoesNotContain("cannot reach", outcome.Stderr, StringComparison.Ordinal);
    }

    [Fact]
    public async Task A_redirect_to_loopback_http_is_followed_with_the_method_body_and_token()
    {
        await using var active = new FakeHttpServer(_ => new(204, ""));
        await using var standby = new FakeHttpServer(r => new(307, "", new Dictionary<string, string> { ["Location"] = new Uri(active.Address, r.Target).ToString() }));
        var policy = Path.Combine(_dir, "app.hcl");
        await File.WriteAllTextAsync(policy, """path "secret/data/app" { capabilities = ["read"] }""");

        var outcome = await MorphRunner.RunAsync("kms", "policy", "write", "app", policy, "--address", standby.Address.ToString(), "--token-file", TokenFile);

        Assert.True(outcome.ExitCode == ExitCodes.Ok, outcome.Stderr);
        var request = Assert.Single(active.Requests);
        Assert.Equal("PUT", request.Method);
        Assert.Equal("/v1/sys/policies/acl/app", request.Target);
        Assert.Equal(Token, request.Headers["X-Vault-Token"]);
        Assert.Contains("secret/data/app", JsonNode.Parse(request.Body)!["policy"]!.GetValue<string>(), StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("v1/sys/policies/acl/x")]
    [InlineData("v1/sys/policies/acl/x#")]
    [InlineData("v1/sys/policies/acl/ops-admin?x=1")]
    [InlineData("v1/sys/policies/acl/ops-admin/")]
    public async Task A_redirect_that_changes_the_path_or_query_is_not_followed(string elsewhere)
    {
        // A standby builds Location from the api_addr in storage, which whoever controls the database can set to
        // https://node2:8200/v1/sys/policies/acl/x#: the request must not land, token and body, on another path of a real node.
        await using var active = new FakeHttpServer(_ => new(204, ""));
        await using var standby = new FakeHttpServer(_ => new(307, "", new Dictionary<string, string> { ["Location"] = active.Address.AbsoluteUri + elsewhere }));
        var policy = Path.Combine(_dir, "ops-admin.hcl");
        await File.WriteAllTextAsync(policy, """path "sys/*" { capabilities = ["sudo"] }""");

        var outcome = await MorphRunner.RunAsync("kms", "policy", "write", "ops-admin", policy, "--address", standby.Address.ToString(), "--token-file", TokenFile);

        Assert.Equal(ExitCodes.Rejected, outcome.ExitCode);
        Assert.Contains("not followed", outcome.Stderr, StringComparison.Ordinal);
        Assert.Contains("/v1/sys/policies/acl/ops-admin", outcome.Stderr, StringComparison.Ordinal);
        Assert.Empty(active.Requests);
        Assert.DoesNotContain(Token, outcome.Stdout + outcome.Stderr, StringComparison.Ordinal);
    }

    [NonLoopbackFact]
    public async Task A_redirect_to_plain_http_on_another_machine_is_reported_and_the_token_never_goes_there()
    {
        var external = NonLoopbackAddress()!;
        await using var elsewhere = new FakeHttpServer(_ => new(200, """{"data":{"keys":["stolen"]}}""", JsonType), external);
        var target = new Uri(elsewhere.Address, "v1/sys/policies/acl?list=true");
        await using var standby = new FakeHttpServer(_ => new(307, "", new Dictionary<string, string> { ["Location"] = target.ToString() }));

        var outcome = await MorphRunner.RunAsync("kms", "policy", "list", "--address", standby.Address.ToString(), "--token-file", TokenFile);

        Assert.Equal(ExitCodes.Rejected, outcome.ExitCode);
        Assert.Contains($"redirected (307) to {target}: not followed", outcome.Stderr, StringComparison.Ordinal);
        Assert.Empty(elsewhere.Requests);
        Assert.DoesNotContain(Token, outcome.Stdout + outcome.Stderr, StringComparison.Ordinal);
    }

    [Fact]
    public async Task A_redirect_to_https_is_followed_with_the_same_tls_trust()
    {
        var external = NonLoopbackAddress() ?? IPAddress.Loopback;
        using var trusted = SelfSigned(external);
        using var other = SelfSigned(external);
        var caFile = Path.Combine(_dir, "ca.pem");
        await File.WriteAllTextAsync(caFile, trusted.ExportCertificatePem());

        await using var active = new FakeHttpServer(_ => new(200, """{"data":{"keys":["default","root"]}}""", JsonType), external, trusted);
        await using var standby = new FakeHttpServer(r => new(307, "", new Dictionary<string, string> { ["Location"] = new Uri(active.Address, r.Target).ToString() }));
        var followed = await MorphRunner.RunAsync("kms", "policy", "list", "--address", standby.Address.ToString(), "--token-file", TokenFile, "--ca-cert", caFile);
        Assert.True(followed.ExitCode == ExitCodes.Ok, followed.Stderr);
        Assert.Contains("root", followed.Stdout, StringComparison.Ordinal);
        Assert.Equal(Token, Assert.Single(active.Requests).Headers["X-Vault-Token"]);

        // The redirect target must pass the same --ca-cert: a host with another certificate gets no request.
        await using var impostor = new FakeHttpServer(_ => new(200, """{"data":{"keys":["stolen"]}}""", JsonType), external, other);
        await using var misleading = new FakeHttpServer(r => new(307, "", new Dictionary<string, string> { ["Location"] = new Uri(impostor.Address, r.Target).ToString() }));
        var refused = await MorphRunner.RunAsync("kms", "policy", "list", "--address", misleading.Address.ToString(), "--token-file", TokenFile, "--ca-cert", caFile);
        Assert.Equal(ExitCodes.Rejected, refused.ExitCode);
        Assert.Contains($"the KMS's certificate at {impostor.Address.GetLeftPart(UriPartial.Authority)} is not trusted: it does not chain to a certificate in {caFile}", refused.Stderr, StringComparison.Ordinal);
        Assert.Empty(impostor.Requests);
    }

    [Fact]
    public async Task Redirect_loops_and_other_redirects_end_in_a_message()
    {
        await using var loop = new FakeHttpServer(r => new(307, "", new Dictionary<string, string> { ["Location"] = r.Target }));
        var looped = await MorphRunner.RunAsync("kms", "policy", "list", "--address", loop.Address.ToString(), "--token-file", TokenFile);
        Assert.Equal(ExitCodes.Rejected, looped.ExitCode);
        Assert.Contains($"redirected more than {KmsHttp.MaxRedirects} times", looped.Stderr, StringComparison.Ordinal);
        Assert.Equal(KmsHttp.MaxRedirects + 1, loop.Requests.Count);

        await using var moved = new FakeHttpServer(_ => new(302, "", new Dictionary<string, string> { ["Location"] = "https://kms.example/v1/" }));
        var found = await MorphRunner.RunAsync("kms", "policy", "list", "--address", moved.Address.ToString(), "--token-file", TokenFile);
        Assert.Equal(ExitCodes.Rejected, found.ExitCode);
        Assert.Contains("the KMS answered 302 (a redirect to https://kms.example/v1/, not followed)", found.Stderr, StringComparison.Ordinal);
        Assert.Single(moved.Requests);
    }

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    /// <summary>This machine's first non-loopback IPv4 address: stands in for "another machine" without leaving it.</summary>
    internal static IPAddress? NonLoopbackAddress() =>
        NetworkInterface.GetAllNetworkInterfaces()
            .Where(n => n.OperationalStatus == OperationalStatus.Up)
            .SelectMany(n => n.GetIPProperties().UnicastAddresses)
            .Select(a => a.Address)
            .FirstOrDefault(a => a.AddressFamily == AddressFamily.InterNetwork && !IPAddress.IsLoopback(a));

    private static X509Certificate2 SelfSigned(IPAddress address)
    {
        using var key = ECDsa.Create(ECCurve.NamedCurves.nistP256);
        var request = new CertificateRequest($"CN={address}", key, HashAlgorithmName.SHA256);
        var names = new SubjectAlternativeNameBuilder();
        names.AddIpAddress(address);
        request.CertificateExtensions.Add(names.Build());
        return request.CreateSelfSigned(DateTimeOffset.UtcNow.AddMinutes(-5), DateTimeOffset.UtcNow.AddHours(1));
    }
}

/// <summary>A fact that needs a non-loopback IPv4 address on this machine; skipped when there is none.</summary>
public sealed class NonLoopbackFactAttribute : FactAttribute
{
    /// <summary>Sets <see cref="FactAttribute.Skip"/> when the machine has only loopback.</summary>
    public NonLoopbackFactAttribute()
    {
        if (KmsTransportTests.NonLoopbackAddress() is null)
        {
            Skip = "this machine has no non-loopback IPv4 address";
        }
    }
}
