using System.Text.Json.Nodes;

namespace Morphisms.Cli.Tests;

/// <summary>
/// Replies and inputs the real KMS and serving host never produce: each ends in a message naming what is wrong and an
/// exit code, never in an unhandled exception's stack trace.
/// </summary>
public sealed class ErrorPathTests
{
    private static readonly IReadOnlyDictionary<string, string> JsonType = new Dictionary<string, string> { ["Content-Type"] = "application/json" };

    [Theory]
    [InlineData("http://[bad")]
    [InlineData("not a url")]
    [InlineData("ftp://127.0.0.1:1")]
    public async Task A_malformed_control_url_is_a_usage_error(string url)
    {
        var outcome = await MorphRunner.RunAsync("ls", "--control", url);
        Assert.Equal(ExitCodes.UsageOrInput, outcome.ExitCode);
        Assert.Contains($"--control: not an http(s) URL: {url}", outcome.Stderr, StringComparison.Ordinal);
        AssertNoStackTrace(outcome);
    }

    /// <summary>A KMS URL that is not https cannot be attested: a usage error before anything is sent.</summary>
    [Theory]
    [InlineData("not a url")]
    [InlineData("ftp://127.0.0.1:1")]
    [InlineData("http://127.0.0.1:1")]
    public async Task Kms_trust_with_a_url_that_is_not_https_is_a_usage_error(string url)
    {
        var outcome = await MorphRunner.RunAsync("kms", "trust", url, "--any-measurement");
        Assert.Equal(ExitCodes.UsageOrInput, outcome.ExitCode);
        Assert.Contains($"morph: {url}: not an https URL", outcome.Stderr, StringComparison.Ordinal);
        AssertNoStackTrace(outcome);
    }

    [Theory]
    [InlineData("bad", "'bad' is not REVISION=PERCENT")]
    [InlineData("v1=", "'v1=' is not REVISION=PERCENT")]
    [InlineData("v1=half", "'v1=half': the percent is not a whole number")]
    [InlineData("v1=-5", "'v1=-5': the percent is not a whole number")]
    [InlineData("v1=100 --tag v1", "'v1' is not REVISION=TAG")]
    public async Task A_malformed_traffic_split_is_a_usage_error_and_nothing_is_sent(string split, string message)
    {
        using var token = new ControlTokenFile();
        await using var server = new FakeHttpServer(_ => new(200, """{"traffic":[]}""", JsonType));
        var outcome = await MorphRunner.RunAsync(["traffic", "fn", .. split.Split(' '), "--control", server.Address.ToString(), "--control-token-file", token.Path]);
        Assert.Equal(ExitCodes.UsageOrInput, outcome.ExitCode);
        Assert.Contains($"morph: {message}", outcome.Stderr, StringComparison.Ordinal);
        Assert.Empty(server.Requests);
        AssertNoStackTrace(outcome);
    }

    [Theory]
    [InlineData(200)]
    [InlineData(502)]
    public async Task A_control_reply_that_is_not_json_is_named(int status)
    {
        using var token = new ControlTokenFile();
        await using var server = new FakeHttpServer(_ => new(status, "<html>a proxy's page</html>"));
        var outcome = await MorphRunner.RunAsync("ls", "--control", server.Address.ToString(), "--control-token-file", token.Path);
        Assert.Equal(ExitCodes.Rejected, outcome.ExitCode);
        Assert.Contains($"{server.Address} answered {status} with a body that is not JSON", outcome.Stderr, StringComparison.Ordinal);
        Assert.Contains("a proxy's page", outcome.Stderr, StringComparison.Ordinal);
        AssertNoStackTrace(outcome);
    }

    [Theory]
    [InlineData("<html>you sent {0}</html>")]
    [InlineData("""{{"errors": ["you sent {0}"]}}""")]
    public async Task A_control_reply_that_echoes_the_token_is_shown_without_it(string format)
    {
        using var token = new ControlTokenFile();
        await using var server = new FakeHttpServer(request => new(400, string.Format(System.Globalization.CultureInfo.InvariantCulture, format, request.Headers["Authorization"]), JsonType));
        var outcome = await MorphRunner.RunAsync("ls", "--control", server.Address.ToString(), "--control-token-file", token.Path);
        // The API's 400 is an input error (exit 2); a body that is not JSON is not the API's answer (exit 1).
        Assert.Equal(format.StartsWith('<') ? ExitCodes.Rejected : ExitCodes.UsageOrInput, outcome.ExitCode);
        Assert.Contains("you sent Bearer [control token]", outcome.Stderr, StringComparison.Ordinal);
        Assert.DoesNotContain(token.Token.Value, outcome.Stdout + outcome.Stderr, StringComparison.Ordinal);
    }

    [Fact]
    public async Task A_kms_reply_with_fields_of_the_wrong_type_is_named()
    {
        await using var server = new FakeHttpServer(_ => new(200, """{"initialized":"yes","sealed":"no","ha_enabled":1}""", JsonType));
        var outcome = await MorphRunner.RunAsync("kms", "status", "--address", server.Address.ToString());
        Assert.Equal(ExitCodes.Rejected, outcome.ExitCode);
        Assert.Contains("the KMS's reply is not in the expected form", outcome.Stderr, StringComparison.Ordinal);
        AssertNoStackTrace(outcome);
    }

    [Theory]
    [InlineData("""{"keys":5,"keys_base64":"k1","root_token":"hvs.the-only-copy"}""")]
    [InlineData("""keys: k1 k2 root_token: hvs.the-only-copy""")]
    public async Task Kms_init_prints_a_malformed_reply_as_received_so_the_keys_survive(string reply)
    {
        await using var server = new FakeHttpServer(_ => new(200, reply, JsonType));
        var outcome = await MorphRunner.RunAsync("kms", "init", "--address", server.Address.ToString());
        Assert.Equal(ExitCodes.Rejected, outcome.ExitCode);
        Assert.Contains(reply, outcome.Stdout, StringComparison.Ordinal);
        Assert.Contains("not in the expected form", outcome.Stderr, StringComparison.Ordinal);
        Assert.DoesNotContain("hvs.the-only-copy", outcome.Stderr, StringComparison.Ordinal);
        AssertNoStackTrace(outcome);

        var json = await MorphRunner.RunAsync("kms", "init", "--address", server.Address.ToString(), "--json");
        Assert.Equal(ExitCodes.Rejected, json.ExitCode);
        Assert.Contains("hvs.the-only-copy", json.Stdout, StringComparison.Ordinal);

        var dir = Directory.CreateTempSubdirectory("morph-init-").FullName;
        try
        {
            var file = Path.Combine(dir, "init.json");
            var saved = await MorphRunner.RunAsync("kms", "init", "--address", server.Address.ToString(), "--output", file);
            Assert.Equal(ExitCodes.Rejected, saved.ExitCode);
            Assert.Equal(reply, await File.ReadAllTextAsync(file));
            Assert.Contains(file, saved.Stderr, StringComparison.Ordinal);
            Assert.DoesNotContain("hvs.the-only-copy", saved.Stdout + saved.Stderr, StringComparison.Ordinal);
            AssertNoStackTrace(saved);
        }
        finally
        {
            Directory.Delete(dir, recursive: true);
        }
    }

    [Fact]
    public async Task Kms_init_still_prints_a_well_formed_reply()
    {
        await using var server = new FakeHttpServer(_ => new(200, """{"keys":["aa"],"keys_base64":["qg=="],"root_token":"hvs.root"}""", JsonType));
        var outcome = await MorphRunner.RunAsync("kms", "init", "--address", server.Address.ToString(), "--key-shares", "1", "--key-threshold", "1");
        Assert.Equal(ExitCodes.Ok, outcome.ExitCode);
        Assert.Contains("Unseal Key 1: qg==", outcome.Stdout, StringComparison.Ordinal);
        Assert.Contains("Root Token: hvs.root", outcome.Stdout, StringComparison.Ordinal);
        var sent = JsonNode.Parse(Assert.Single(server.Requests, r => r.Method == "PUT").Body)!;
        Assert.Equal(1, sent["secret_shares"]!.GetValue<int>());
        Assert.Null(sent["recovery_shares"]);
    }

    /// <summary>A KMS with auto-unseal says <c>recovery_seal</c>: init asks for the shares as recovery keys, as Vault's init takes them.</summary>
    [Fact]
    public async Task Kms_init_asks_an_auto_unseal_kms_for_recovery_keys()
    {
        await using var server = new FakeHttpServer(r => r.Method == "GET"
            ? new(200, """{"type":"pkcs11","initialized":false,"sealed":true,"recovery_seal":true}""", JsonType)
            : new(200, """{"keys":["aa"],"keys_base64":["qg=="],"recovery_keys":["aa"],"recovery_keys_base64":["qg=="],"root_token":"hvs.root"}""", JsonType));
        var outcome = await MorphRunner.RunAsync("kms", "init", "--address", server.Address.ToString(), "--key-shares", "1", "--key-threshold", "1");
        Assert.Equal(ExitCodes.Ok, outcome.ExitCode);
        Assert.Contains("Recovery Key 1: qg==", outcome.Stdout, StringComparison.Ordinal);
        Assert.Contains("the pkcs11 seal unseals the KMS at each start", outcome.Stdout, StringComparison.Ordinal);
        Assert.Contains("Root Token: hvs.root", outcome.Stdout, StringComparison.Ordinal);
        var sent = JsonNode.Parse(Assert.Single(server.Requests, r => r.Method == "PUT").Body)!;
        Assert.Equal(1, sent["recovery_shares"]!.GetValue<int>());
        Assert.Equal(1, sent["recovery_threshold"]!.GetValue<int>());
        Assert.Null(sent["secret_shares"]);
    }

    /// <summary>A "." or ".." segment would be folded away by the URL: refused before anything is sent.</summary>
    [Theory]
    [InlineData("policy", "delete", "..")]
    [InlineData("policy", "read", ".")]
    [InlineData("function", "get", "..")]
    public async Task Kms_paths_with_dot_segments_are_refused_before_sending(params string[] args)
    {
        var dir = Directory.CreateTempSubdirectory("morph-token-").FullName;
        try
        {
            var file = Path.Combine(dir, "token");
            await File.WriteAllTextAsync(file, "hvs.t\n");
            await using var server = new FakeHttpServer(_ => new(200, "{}", JsonType));
            var outcome = await MorphRunner.RunAsync(["kms", .. args, "--address", server.Address.ToString(), "--token-file", file]);
            Assert.Equal(ExitCodes.UsageOrInput, outcome.ExitCode);
            Assert.Contains("segment: name the path without it", outcome.Stderr, StringComparison.Ordinal);
            Assert.Empty(server.Requests);
            AssertNoStackTrace(outcome);
        }
        finally
        {
            Directory.Delete(dir, recursive: true);
        }
    }

    /// <summary>An init whose auto-unseal failed answers the keys with a warning and <c>sealed</c>: both reach stderr.</summary>
    [Fact]
    public async Task Kms_init_shows_the_kms_warnings_and_that_it_stayed_sealed()
    {
        await using var server = new FakeHttpServer(_ => new(200,
            """{"keys":["aa"],"keys_base64":["qg=="],"root_token":"hvs.root","sealed":true,"warnings":["the auto-unseal that follows init failed (disk full)"]}""", JsonType));
        var outcome = await MorphRunner.RunAsync("kms", "init", "--address", server.Address.ToString(), "--key-shares", "1", "--key-threshold", "1");
        Assert.Equal(ExitCodes.Ok, outcome.ExitCode);
        Assert.Contains("Root Token: hvs.root", outcome.Stdout, StringComparison.Ordinal);
        Assert.Contains("morph: warning from the KMS: the auto-unseal that follows init failed (disk full)", outcome.Stderr, StringComparison.Ordinal);
        Assert.Contains("initialised but sealed", outcome.Stderr, StringComparison.Ordinal);
        Assert.DoesNotContain("hvs.root", outcome.Stderr, StringComparison.Ordinal);
    }

    /// <summary>
    /// The KMS is initialised, then the keys cannot be saved (the directory of <c>--output</c> turned into a regular file
    /// meanwhile, which fails even for root): they are printed rather than lost, with a message saying they are the only copy.
    /// </summary>
    [Fact]
    public async Task Kms_init_prints_the_keys_when_the_output_file_cannot_be_written_after_init()
    {
        var dir = Directory.CreateTempSubdirectory("morph-init-").FullName;
        var keysDir = Path.Combine(dir, "keys");
        Directory.CreateDirectory(keysDir);
        var file = Path.Combine(keysDir, "init.json");
        try
        {
            await using var server = new FakeHttpServer(r =>
            {
                if (r.Method == "GET")
                {
                    // sys/seal-status, asked first: a Shamir KMS.
                    return new(200, """{"type":"shamir","initialized":false,"sealed":true,"recovery_seal":false}""", JsonType);
                }

                Directory.Delete(keysDir, recursive: true);
                File.WriteAllText(keysDir, "not a directory");
                return new(200, """{"keys":["aa"],"keys_base64":["qg=="],"root_token":"hvs.the-only-copy"}""", JsonType);
            });
            var outcome = await MorphRunner.RunAsync("kms", "init", "--address", server.Address.ToString(), "--key-shares", "1", "--key-threshold", "1", "--output", file);
            Assert.Equal(ExitCodes.UsageOrInput, outcome.ExitCode);
            Assert.Contains("Unseal Key 1: qg==", outcome.Stdout, StringComparison.Ordinal);
            Assert.Contains("Root Token: hvs.the-only-copy", outcome.Stdout, StringComparison.Ordinal);
            Assert.Contains($"the KMS is initialised, but {file} could not be written", outcome.Stderr, StringComparison.Ordinal);
            Assert.Contains("ONLY copy of the unseal keys and the root token", outcome.Stderr, StringComparison.Ordinal);
            Assert.DoesNotContain("hvs.the-only-copy", outcome.Stderr, StringComparison.Ordinal);
            AssertNoStackTrace(outcome);
        }
        finally
        {
            Directory.Delete(dir, recursive: true);
        }
    }

    /// <summary>A corrupt simulated TEE state is a usage error naming the file, found before the KMS is asked anything.</summary>
    [Theory]
    [InlineData("{not json")]
    [InlineData("{}")]
    [InlineData("""{"ArkKey":"x","Ark":"-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----"}""")]
    public async Task Kms_trust_with_a_corrupt_simulated_tee_names_the_file(string content)
    {
        var dir = Directory.CreateTempSubdirectory("morph-sim-").FullName;
        try
        {
            var file = Path.Combine(dir, "simulated-tee.json");
            await File.WriteAllTextAsync(file, content);
            using var key = System.Security.Cryptography.ECDsa.Create();
            using var certificate = new System.Security.Cryptography.X509Certificates.CertificateRequest("CN=127.0.0.1", key, System.Security.Cryptography.HashAlgorithmName.SHA256)
                .CreateSelfSigned(DateTimeOffset.UtcNow.AddMinutes(-5), DateTimeOffset.UtcNow.AddHours(1));
            await using var server = new FakeHttpServer(_ => new(500, "{}", JsonType), certificate: certificate);
            var outcome = await MorphRunner.RunAsync("kms", "trust", server.Address.ToString(), "--trust-simulated-tee", dir, "--expect-measurement", "snp:" + new string('0', 96));
            Assert.Equal(ExitCodes.UsageOrInput, outcome.ExitCode);
            Assert.Contains($"morph: {file}: not a simulated TEE's state file", outcome.Stderr, StringComparison.Ordinal);
            Assert.Empty(server.Requests);
            AssertNoStackTrace(outcome);
        }
        finally
        {
            Directory.Delete(dir, recursive: true);
        }
    }

    /// <summary>A token file that cannot be a header value is a usage error naming the file and not its content; nothing is sent.</summary>
    [Theory]
    [InlineData("hvs.first\nhvs.second")]
    [InlineData("hvs.t\u0000ken")]
    [InlineData("hvs.tökén")]
    public async Task A_kms_token_that_cannot_be_sent_is_a_usage_error(string token)
    {
        var dir = Directory.CreateTempSubdirectory("morph-token-").FullName;
        try
        {
            var file = Path.Combine(dir, "token");
            await File.WriteAllTextAsync(file, token + "\n");
            await using var server = new FakeHttpServer(_ => new(200, """{"data":{"keys":[]}}""", JsonType));
            var outcome = await MorphRunner.RunAsync("kms", "kv", "list", "secret/", "--address", server.Address.ToString(), "--token-file", file);
            Assert.Equal(ExitCodes.UsageOrInput, outcome.ExitCode);
            Assert.Contains($"morph: --token-file: {file}: not a token (a token is one line of printable ASCII)", outcome.Stderr, StringComparison.Ordinal);
            Assert.DoesNotContain("hvs.", outcome.Stderr, StringComparison.Ordinal);
            Assert.Empty(server.Requests);
            AssertNoStackTrace(outcome);
        }
        finally
        {
            Directory.Delete(dir, recursive: true);
        }
    }

    internal static void AssertNoStackTrace(MorphRunner.Outcome outcome)
    {
        Assert.DoesNotContain("Unhandled exception", outcome.Stderr, StringComparison.Ordinal);
        Assert.DoesNotContain("   at ", outcome.Stderr, StringComparison.Ordinal);
    }
}

/// <summary>A control token in a file of its own, for commands given <c>--control</c> and <c>--control-token-file</c>.</summary>
internal sealed class ControlTokenFile : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("morph-token-").FullName;

    public ControlTokenFile()
    {
        Path = System.IO.Path.Combine(_dir, "serving-control-token");
        Token.WriteFile(Path);
    }

    public Morphisms.Serving.Hosting.BearerToken Token { get; } = Morphisms.Serving.Hosting.BearerToken.New();

    public string Path { get; }

    public void Dispose() => Directory.Delete(_dir, recursive: true);
}
