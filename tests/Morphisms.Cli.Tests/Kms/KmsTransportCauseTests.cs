using System.Net;
using System.Net.Sockets;
using Morphisms.Kms;

namespace Morphisms.Cli.Tests.Kms;

/// <summary>
/// The documented standalone dev KMS (<c>morph kms server --dev … --tls-self</c>) reached the wrong way: the CLI says why
/// and what to do (an https address, <c>morph kms trust</c>, the token alone in a file) instead of "An error occurred
/// while sending the request" or a 403 for a token that was a whole JSON key file.
/// </summary>
[Collection(MorphismsHomeCollection.Name)]
public sealed class KmsTransportCauseTests
{
    [Fact]
    public Task Plain_http_to_a_kms_serving_tls_is_named() =>
        NoMorphUpTests.InEmptyHomeAsync(async _ =>
        {
            await using var kms = await StartTlsDevKmsAsync();
            var port = kms.BaseAddress!.Port;

            var outcome = await MorphRunner.RunAsync("kms", "status", "--address", $"http://127.0.0.1:{port}");

            Assert.Equal(ExitCodes.Rejected, outcome.ExitCode);
            Assert.Contains($"morph: the KMS at http://127.0.0.1:{port} answered TLS, but this address is http://: use https://127.0.0.1:{port}", outcome.Stderr, StringComparison.Ordinal);
            Assert.Contains($"morph kms trust https://127.0.0.1:{port}", outcome.Stderr, StringComparison.Ordinal);
        });

    /// <summary>Nothing listening is not mistaken for a TLS server.</summary>
    [Fact]
    public Task Plain_http_to_nothing_says_the_connection_was_refused() =>
        NoMorphUpTests.InEmptyHomeAsync(async _ =>
        {
            var port = ClosedPort();

            var outcome = await MorphRunner.RunAsync("kms", "status", "--address", $"http://127.0.0.1:{port}");

            Assert.Equal(ExitCodes.Rejected, outcome.ExitCode);
            Assert.Contains($"morph: cannot reach the KMS at http://127.0.0.1:{port}: Connection refused", outcome.Stderr, StringComparison.Ordinal);
            Assert.DoesNotContain("TLS", outcome.Stderr, StringComparison.Ordinal);
        });

    /// <summary>
    /// The dev KMS's key file (as it writes it: unseal key and root token in one JSON object) is not a token file: refused
    /// before anything is sent, with how to take the token out of it; the same JSON in MORPH_KMS_TOKEN likewise.
    /// </summary>
    [Fact]
    public Task A_dev_key_file_as_token_file_is_refused_with_what_to_do() =>
        NoMorphUpTests.InEmptyHomeAsync(async home =>
        {
            await using var server = new FakeHttpServer(_ => new FakeHttpServer.Response(403, """{"errors":["permission denied"]}"""));
            var keys = Path.Combine(home, "kms.db.dev-keys.json");
            await File.WriteAllTextAsync(keys, """{"unseal_key_base64":"ge1DJxF2j5wBd6CwoBCL7gghFi8tLIPbrkdiIL0AnSI=","root_token":"hvs.CoEH93YsKRouiuZjxRtgzqXDGaamJ0Ak"}""");

            var file = await MorphRunner.RunAsync("kms", "kv", "get", "secret/x", "--address", server.Address.ToString(), "--token-file", keys);

            Assert.Equal(ExitCodes.UsageOrInput, file.ExitCode);
            Assert.Contains($"morph: --token-file: {keys}: JSON, not a token", file.Stderr, StringComparison.Ordinal);
            Assert.Contains($"(umask 077; jq -r .root_token {keys} > token), and pass --token-file token", file.Stderr, StringComparison.Ordinal);
            Assert.DoesNotContain("hvs.", file.Stderr, StringComparison.Ordinal);
            Assert.DoesNotContain("ge1DJ", file.Stderr, StringComparison.Ordinal);

            Environment.SetEnvironmentVariable("MORPH_KMS_TOKEN", await File.ReadAllTextAsync(keys));
            var variable = await MorphRunner.RunAsync("kms", "kv", "get", "secret/x", "--address", server.Address.ToString());
            Assert.Equal(ExitCodes.UsageOrInput, variable.ExitCode);
            Assert.Contains("morph: $MORPH_KMS_TOKEN: JSON, not a token", variable.Stderr, StringComparison.Ordinal);
            Assert.Empty(server.Requests);
        });

    private static async Task<KmsServer> StartTlsDevKmsAsync()
    {
        var kms = new KmsServer(new KmsServerOptions
        {
            Listen = "127.0.0.1:0",
            Storage = "inmem",
            Dev = true,
            Tls = KmsTlsOptions.SelfSigned,
            WarningWriter = TextWriter.Null,
        });
        await kms.StartAsync();
        return kms;
    }

    private static int ClosedPort()
    {
        using var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        return ((IPEndPoint)listener.LocalEndpoint).Port;
    }
}
