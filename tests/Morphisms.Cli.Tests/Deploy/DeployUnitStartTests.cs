using System.Net;
using System.Text.Json.Nodes;
using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;
using Morphisms.Cli.Tests.Up;
using Morphisms.Kms.Tests;

namespace Morphisms.Cli.Tests.Deploy;

/// <summary>
/// The systemd unit's command line, expanded as systemd would but with its directories in a temporary one, starts
/// a real KMS: TLS from the credential files, storage where the unit says (SQLite, or PostgreSQL from the connection
/// string credential), the audit log in LogsDirectory, sealed and uninitialised until <c>morph kms init</c>. This is
/// what the flag parse alone cannot see (an option's value refused at start, a flag that only fits another storage).
/// </summary>
public sealed class DeployUnitStartTests(PostgresFixture postgres) : IClassFixture<PostgresFixture>, IAsyncLifetime
{
    private readonly DirectoryInfo _root = Directory.CreateTempSubdirectory("morph-deploy-unit-");

    [Theory]
    [MemberData(nameof(DeployFolderTests.Variants), MemberType = typeof(DeployFolderTests))]
    public async Task Unit_command_line_starts_a_sealed_kms_over_tls(string[] files)
    {
        // What systemd provides: the credentials directory with the files LoadCredential= copies, and the state and
        // logs directories it creates before the start.
        var credentials = _root.CreateSubdirectory("credentials").FullName;
        var state = _root.CreateSubdirectory("state").FullName;
        var logs = _root.CreateSubdirectory("log").FullName;
        Directory.CreateDirectory(Path.Combine(state, "morphisms-kms"));
        Directory.CreateDirectory(Path.Combine(logs, "morphisms-kms"));
        using var certificate = SelfSigned();
        await File.WriteAllTextAsync(Path.Combine(credentials, "tls.pem"), certificate.ExportCertificatePem());
        await File.WriteAllTextAsync(Path.Combine(credentials, "tls.key"), certificate.GetECDsaPrivateKey()!.ExportPkcs8PrivateKeyPem());
        await File.WriteAllTextAsync(Path.Combine(credentials, "postgres"), await postgres.Server.CreateDatabaseAsync());

        var specifiers = new Dictionary<char, string>(DeployFolderTests.SystemSpecifiers) { ['d'] = credentials, ['S'] = state, ['L'] = logs };
        var port = TestProcesses.FreePort();
        var (unit, argv) = DeployFolderTests.Expand(files, specifiers, new Dictionary<string, string>
        {
            // Loopback on a free port instead of 0.0.0.0:8200, and this node's address to match.
            ["MORPH_KMS_LISTEN"] = $"127.0.0.1:{port}",
            ["MORPH_KMS_API_ADDR"] = $"https://localhost:{port}",
            // The example's AMD CRL directory is the operator's to fill; DeployFolderTests parses that option.
            ["MORPH_KMS_OPTIONS"] = "",
        });
        var environment = unit.Environment(specifiers);
        await using var kms = MorphProcess.Start(environment["MORPHISMS_HOME"], environment.ToDictionary(), [.. argv.Skip(1)]);
        await kms.WaitForAsync($"listening https://127.0.0.1:{port}/");

        using var http = new HttpClient(new HttpClientHandler
        {
            ServerCertificateCustomValidationCallback = (_, presented, _, _) => presented is not null && presented.RawData.AsSpan().SequenceEqual(certificate.RawData),
        });
        using var health = await http.GetAsync(new Uri($"https://localhost:{port}/v1/sys/health"));
        Assert.Equal(HttpStatusCode.NotImplemented, health.StatusCode); // not initialised

        // Then deploy/README.md's first start: init into a new 0600 file, unseal with the shares, and it serves.
        string[] connection = ["--address", $"https://localhost:{port}", "--ca-cert", Path.Combine(credentials, "tls.pem")];
        var init = Path.Combine(_root.FullName, "init.json");
        var initialised = await MorphRunner.RunAsync(["kms", "init", "--key-shares", "1", "--key-threshold", "1", "--output", init, .. connection]);
        Assert.True(initialised.ExitCode == ExitCodes.Ok, initialised.Stderr);
        var shares = Path.Combine(_root.FullName, "shares.txt");
        await File.WriteAllLinesAsync(shares, JsonNode.Parse(await File.ReadAllTextAsync(init))!["keys"]!.AsArray().Select(k => k!.GetValue<string>()));
        var unsealed = await MorphRunner.RunAsync(["kms", "unseal", "--key-file", shares, .. connection]);
        Assert.True(unsealed.ExitCode == ExitCodes.Ok, unsealed.Stderr);
        // With PostgreSQL an unsealed node is a standby (429) until it takes the leader lock.
        var status = HttpStatusCode.TooManyRequests;
        for (var deadline = DateTime.UtcNow.AddSeconds(30); status == HttpStatusCode.TooManyRequests && DateTime.UtcNow < deadline; await Task.Delay(100))
        {
            using var response = await http.GetAsync(new Uri($"https://localhost:{port}/v1/sys/health"));
            status = response.StatusCode;
        }

        Assert.Equal(HttpStatusCode.OK, status);
        Assert.True(File.Exists(Path.Combine(logs, "morphisms-kms", "audit.log")), "no audit log in LogsDirectory");
        Assert.Equal(files.Length == 1, File.Exists(Path.Combine(state, "morphisms-kms", "kms.db")));
        Assert.DoesNotContain(postgres.Server.Password, kms.Stdout + kms.Stderr, StringComparison.Ordinal);
    }

    public Task InitializeAsync() => Task.CompletedTask;

    public Task DisposeAsync()
    {
        _root.Delete(recursive: true);
        return Task.CompletedTask;
    }

    private static X509Certificate2 SelfSigned()
    {
        using var key = ECDsa.Create(ECCurve.NamedCurves.nistP256);
        var request = new CertificateRequest("CN=localhost", key, HashAlgorithmName.SHA256);
        var names = new SubjectAlternativeNameBuilder();
        names.AddDnsName("localhost");
        request.CertificateExtensions.Add(names.Build());
        return request.CreateSelfSigned(DateTimeOffset.UtcNow.AddDays(-1), DateTimeOffset.UtcNow.AddDays(1));
    }
}
