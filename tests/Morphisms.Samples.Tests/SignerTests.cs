using System.Net;
using System.Net.Http.Headers;
using System.Text;
using System.Text.Json;
using NSec.Cryptography;

namespace Morphisms.Samples.Tests;

/// <summary>The signer sample as a real process: signatures verify, keys come from the secrets dir and rotate on SIGHUP.</summary>
public sealed class SignerTests : IDisposable
{
    private static readonly SignatureAlgorithm Ed25519 = SignatureAlgorithm.Ed25519;
    private readonly string _secrets = Directory.CreateTempSubdirectory("morph-signer-").FullName;

    public void Dispose() => Directory.Delete(_secrets, recursive: true);

    [Fact]
    public async Task A_generated_key_signs_and_the_signature_verifies()
    {
        await using var signer = await SampleProcess.StartAsync("Signer");

        var message = "attested hello"u8.ToArray();
        var signed = await SignAsync(signer, message);
        Assert.Equal("ed25519", signed.Algorithm);
        Assert.True(Verify(signed.PublicKey, message, signed.Signature));
        Assert.False(Verify(signed.PublicKey, "another message"u8.ToArray(), signed.Signature));

        var (publicKey, source) = await PublicKeyAsync(signer);
        Assert.Equal(signed.PublicKey, publicKey);
        Assert.Equal("generated", source);
        Assert.Equal("ok", await signer.Client.GetStringAsync("healthz"));
    }

    [Fact]
    public async Task Each_start_generates_a_new_key()
    {
        await using var first = await SampleProcess.StartAsync("Signer");
        await using var second = await SampleProcess.StartAsync("Signer");
        Assert.NotEqual((await PublicKeyAsync(first)).PublicKey, (await PublicKeyAsync(second)).PublicKey);
    }

    [Theory]
    [InlineData("raw")]
    [InlineData("hex")]
    [InlineData("base64")]
    [InlineData("pem")]
    public async Task The_key_comes_from_the_secrets_directory_in_every_accepted_form(string form)
    {
        using var key = Key.Create(Ed25519, new KeyCreationParameters { ExportPolicy = KeyExportPolicies.AllowPlaintextExport });
        WriteKey(form switch
        {
            "raw" => key.Export(KeyBlobFormat.RawPrivateKey),
            "hex" => Encoding.ASCII.GetBytes(Convert.ToHexStringLower(key.Export(KeyBlobFormat.RawPrivateKey)) + "\n"),
            "base64" => Encoding.ASCII.GetBytes(Convert.ToBase64String(key.Export(KeyBlobFormat.RawPrivateKey)) + "\n"),
            _ => key.Export(KeyBlobFormat.PkixPrivateKeyText),
        });

        await using var signer = await SampleProcess.StartAsync("Signer", Env());

        var expected = key.PublicKey.Export(KeyBlobFormat.RawPublicKey);
        var message = Encoding.UTF8.GetBytes($"signed with the {form} key");
        var signed = await SignAsync(signer, message);
        Assert.Equal(expected, signed.PublicKey);
        Assert.True(Ed25519.Verify(key.PublicKey, message, signed.Signature));
        Assert.Equal("secret", (await PublicKeyAsync(signer)).Source);
    }

    [Fact]
    public async Task SIGHUP_swaps_in_a_new_key_version_without_a_restart_and_a_bad_version_keeps_the_current_key()
    {
        using var first = NewSeed(out var firstSeed);
        WriteKey(firstSeed);
        await using var signer = await SampleProcess.StartAsync("Signer", Env());
        Assert.Equal(first.PublicKey.Export(KeyBlobFormat.RawPublicKey), (await PublicKeyAsync(signer)).PublicKey);

        // As morph-init does: the new version is written (temp + rename), then SIGHUP.
        using var second = NewSeed(out var secondSeed);
        WriteKey(Encoding.ASCII.GetBytes(Convert.ToBase64String(secondSeed)));
        signer.Signal(SampleProcess.SIGHUP);
        var expected = second.PublicKey.Export(KeyBlobFormat.RawPublicKey);
        await Until(async () => (await PublicKeyAsync(signer)).PublicKey.SequenceEqual(expected), "the second key after SIGHUP");

        var message = "after rotation"u8.ToArray();
        var signed = await SignAsync(signer, message);
        Assert.True(Ed25519.Verify(second.PublicKey, message, signed.Signature));

        // A malformed version is refused: the function keeps serving with the key it has.
        WriteKey("not a key at all"u8.ToArray());
        signer.Signal(SampleProcess.SIGHUP);
        await Until(() => Task.FromResult(signer.Stderr.Contains("keeping the current key", StringComparison.Ordinal)), "the refusal logged");
        Assert.Equal(expected, (await SignAsync(signer, message)).PublicKey);
        Assert.DoesNotContain("not a key at all", signer.Stderr, StringComparison.Ordinal);

        // Same pid throughout: reloaded, not restarted.
        Assert.Equal(2, CountOccurrences(signer.Stderr, "SIGHUP:"));
        Assert.Equal(1, CountOccurrences(signer.Stderr, "listening on"));
    }

    /// <summary>
    /// The last two are 32 bytes of text (16 random bytes in hex, 24 in base64): the length of a raw seed, but a key
    /// of the wrong length, once taken as a seed nobody meant.
    /// </summary>
    [Theory]
    [InlineData("0123456789")]
    [InlineData("3f9a0c1d5e7b2a4c6d8e0f1a2b3c4d5e")]
    [InlineData("q83vEjRWeJq8T8kx7wN+dLqhy0Fp2Zcx")]
    public async Task A_malformed_key_file_at_start_is_an_error_not_a_silent_fresh_key(string content)
    {
        WriteKey(Encoding.ASCII.GetBytes(content));
        await using var signer = SampleProcess.Launch("Signer", Env());
        Assert.Equal(1, await signer.WaitForExitAsync(TimeSpan.FromSeconds(60)));
        Assert.Contains("cannot use the signing key", signer.Stderr, StringComparison.Ordinal);
        Assert.DoesNotContain(content, signer.Stderr, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Started_early_it_listens_but_answers_only_after_ready_with_the_key_written_for_it()
    {
        await using var signer = await LaunchEarlyAsync();

        // The port is open, but a request sent now is held until release, and is answered with the key written
        // after it was sent (as morph-init writes it after attestation).
        var heldRequest = PublicKeyAsync(signer);
        await Task.Delay(TimeSpan.FromMilliseconds(300));
        Assert.False(heldRequest.IsCompleted, "the signer answered before 'ready'");

        using var key = Key.Create(Ed25519, new KeyCreationParameters { ExportPolicy = KeyExportPolicies.AllowPlaintextExport });
        WriteKey(key.Export(KeyBlobFormat.RawPrivateKey));
        await signer.StandardInput.WriteLineAsync("ready");
        signer.StandardInput.Close();

        var (publicKey, source) = await heldRequest;
        Assert.Equal(key.PublicKey.Export(KeyBlobFormat.RawPublicKey), publicKey);
        Assert.Equal("secret", source);
        Assert.Equal(1, CountOccurrences(signer.Stderr, "listening on"));
    }

    [Fact]
    public async Task Started_early_without_ready_it_exits_and_a_held_request_gets_no_answer()
    {
        await using var signer = await LaunchEarlyAsync();
        var heldRequest = signer.Client.GetAsync("healthz");
        await Task.Delay(TimeSpan.FromMilliseconds(100));
        signer.StandardInput.Close();

        Assert.Equal(1, await signer.WaitForExitAsync(TimeSpan.FromSeconds(60)));
        Assert.Contains("without 'ready'", signer.Stderr, StringComparison.Ordinal);
        Assert.DoesNotContain("listening on", signer.Stderr, StringComparison.Ordinal);
        await Assert.ThrowsAsync<HttpRequestException>(() => heldRequest);
    }

    [Fact]
    public async Task Started_early_a_SIGTERM_while_it_waits_for_ready_stops_it()
    {
        await using var signer = await LaunchEarlyAsync();

        // Standard input stays open: only the signal can end the wait.
        signer.Signal(SampleProcess.SIGTERM);
        Assert.Equal(1, await signer.WaitForExitAsync(TimeSpan.FromSeconds(60)));
        Assert.Contains("stopped before 'ready'", signer.Stderr, StringComparison.Ordinal);
    }

    [Fact]
    public async Task A_MORPH_SECRETS_READY_other_than_stdin_is_a_usage_error()
    {
        await using var signer = SampleProcess.Launch("Signer", new Dictionary<string, string> { ["MORPH_SECRETS_READY"] = "file" });
        Assert.Equal(2, await signer.WaitForExitAsync(TimeSpan.FromSeconds(60)));
        Assert.Contains("MORPH_SECRETS_READY", signer.Stderr, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Under_morph_init_a_missing_key_stops_the_signer_instead_of_a_silent_fresh_key()
    {
        // MORPH_SECRETS_DIR says the key was to come from the KMS: its absence (an empty bundle, or files that never
        // reached the app, as under Gramine's per-process tmpfs) must not turn into a random key.
        await using var signer = SampleProcess.Launch("Signer", Env());
        Assert.Equal(1, await signer.WaitForExitAsync(TimeSpan.FromSeconds(60)));
        Assert.Contains("no signing-key in", signer.Stderr, StringComparison.Ordinal);
        Assert.DoesNotContain("listening on", signer.Stderr, StringComparison.Ordinal);
    }

    [Fact]
    public async Task An_empty_secrets_directory_means_a_generated_key_only_when_the_function_asks_for_one()
    {
        await using var signer = await SampleProcess.StartAsync("Signer", new Dictionary<string, string>(Env()) { ["SIGNER_GENERATE_KEY"] = "true" });
        Assert.Equal("generated", (await PublicKeyAsync(signer)).Source);

        await using var bad = SampleProcess.Launch("Signer", new Dictionary<string, string>(Env()) { ["SIGNER_GENERATE_KEY"] = "yes" });
        Assert.Equal(2, await bad.WaitForExitAsync(TimeSpan.FromSeconds(60)));
        Assert.Contains("SIGNER_GENERATE_KEY must be", bad.Stderr, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Bodies_are_bounded_and_an_empty_one_is_refused()
    {
        await using var signer = await SampleProcess.StartAsync("Signer", new Dictionary<string, string> { ["SIGNER_MAX_MESSAGE_BYTES"] = "1024" });

        using (var empty = await signer.Client.PostAsync("sign", new ByteArrayContent([])))
        {
            Assert.Equal(HttpStatusCode.BadRequest, empty.StatusCode);
            Assert.Contains("empty message", await empty.Content.ReadAsStringAsync(), StringComparison.Ordinal);
        }

        var atLimit = new byte[1024];
        Random.Shared.NextBytes(atLimit);
        var signed = await SignAsync(signer, atLimit);
        Assert.True(Verify(signed.PublicKey, atLimit, signed.Signature));

        using (var tooLarge = await signer.Client.PostAsync("sign", new ByteArrayContent(new byte[1025])))
        {
            Assert.Equal(HttpStatusCode.RequestEntityTooLarge, tooLarge.StatusCode);
            Assert.Contains("larger than 1024 bytes", await tooLarge.Content.ReadAsStringAsync(), StringComparison.Ordinal);
        }

        // Without Content-Length (chunked) the limit holds as the body streams in. The body is kept
        // small enough to be sent whole before the server's early 413 closes the connection;
        // a larger one races that close and the client sees a broken pipe instead of the answer.
        using (var request = new HttpRequestMessage(HttpMethod.Post, "sign") { Content = new ByteArrayContent(new byte[4 * 1024]) })
        {
            request.Headers.TransferEncodingChunked = true;
            using var chunked = await signer.Client.SendAsync(request);
            Assert.Equal(HttpStatusCode.RequestEntityTooLarge, chunked.StatusCode);
            Assert.True(chunked.Headers.ConnectionClose);
        }

        // Still serving afterwards.
        var after = await SignAsync(signer, "x"u8.ToArray());
        Assert.True(Verify(after.PublicKey, "x"u8.ToArray(), after.Signature));
    }

    [Fact]
    public async Task Unknown_routes_and_methods_are_refused()
    {
        await using var signer = await SampleProcess.StartAsync("Signer");
        using var missing = await signer.Client.GetAsync("nope");
        Assert.Equal(HttpStatusCode.NotFound, missing.StatusCode);
        using var wrongMethod = await signer.Client.GetAsync("sign");
        Assert.Equal(HttpStatusCode.MethodNotAllowed, wrongMethod.StatusCode);
    }

    [Fact]
    public async Task SIGTERM_stops_it_cleanly_and_a_bad_PORT_is_a_usage_error()
    {
        await using (var signer = await SampleProcess.StartAsync("Signer"))
        {
            signer.Signal(SampleProcess.SIGTERM);
            Assert.Equal(0, await signer.WaitForExitAsync(TimeSpan.FromSeconds(30)));
        }

        await using var bad = SampleProcess.Launch("Signer", new Dictionary<string, string> { ["PORT"] = "http" });
        Assert.Equal(2, await bad.WaitForExitAsync(TimeSpan.FromSeconds(60)));
        Assert.Contains("PORT must be a TCP port", bad.Stderr, StringComparison.Ordinal);
    }

    private Dictionary<string, string> Env() => new() { ["MORPH_SECRETS_DIR"] = _secrets };

    // As morph-init starts it with MORPH_APP_START=early: returned once it says it waits for "ready".
    private async Task<SampleProcess> LaunchEarlyAsync()
    {
        var early = new Dictionary<string, string>(Env()) { ["MORPH_SECRETS_READY"] = "stdin" };
        var signer = SampleProcess.Launch("Signer", early, redirectInput: true);
        try
        {
            await WaitForAsync(() => signer.Stderr.Contains("waiting for 'ready'", StringComparison.Ordinal));
            return signer;
        }
        catch
        {
            await signer.DisposeAsync();
            throw;
        }
    }

    private static async Task WaitForAsync(Func<bool> condition)
    {
        using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(60));
        while (!condition())
        {
            await Task.Delay(25, timeout.Token);
        }
    }

    // morph-init's way: a temp file, mode 0400, renamed over the old one.
    private void WriteKey(byte[] content)
    {
        var target = Path.Combine(_secrets, "signing-key");
        var temp = Path.Combine(_secrets, $".signing-key.{Guid.NewGuid():N}");
        File.WriteAllBytes(temp, content);
        File.SetUnixFileMode(temp, UnixFileMode.UserRead);
        File.Move(temp, target, overwrite: true);
    }

    private static Key NewSeed(out byte[] seed)
    {
        var key = Key.Create(Ed25519, new KeyCreationParameters { ExportPolicy = KeyExportPolicies.AllowPlaintextExport });
        seed = key.Export(KeyBlobFormat.RawPrivateKey);
        return key;
    }

    private static bool Verify(byte[] publicKey, byte[] message, byte[] signature) =>
        Ed25519.Verify(PublicKey.Import(Ed25519, publicKey, KeyBlobFormat.RawPublicKey), message, signature);

    private static async Task<(byte[] Signature, byte[] PublicKey, string Algorithm)> SignAsync(SampleProcess signer, byte[] message)
    {
        using var content = new ByteArrayContent(message);
        content.Headers.ContentType = new MediaTypeHeaderValue("application/octet-stream");
        using var response = await signer.Client.PostAsync("sign", content);
        var body = await response.Content.ReadAsStringAsync();
        Assert.True(response.StatusCode == HttpStatusCode.OK, $"{(int)response.StatusCode}: {body}");
        Assert.Equal("application/json", response.Content.Headers.ContentType?.MediaType);
        using var json = JsonDocument.Parse(body);
        var root = json.RootElement;
        var signature = Convert.FromBase64String(root.GetProperty("signature").GetString()!);
        var publicKey = Convert.FromBase64String(root.GetProperty("public_key").GetString()!);
        Assert.Equal(64, signature.Length);
        Assert.Equal(32, publicKey.Length);
        return (signature, publicKey, root.GetProperty("algorithm").GetString()!);
    }

    private static async Task<(byte[] PublicKey, string Source)> PublicKeyAsync(SampleProcess signer)
    {
        using var json = JsonDocument.Parse(await signer.Client.GetStringAsync("public-key"));
        Assert.Equal("ed25519", json.RootElement.GetProperty("algorithm").GetString());
        return (Convert.FromBase64String(json.RootElement.GetProperty("public_key").GetString()!), json.RootElement.GetProperty("source").GetString()!);
    }

    private static async Task Until(Func<Task<bool>> condition, string what)
    {
        var deadline = DateTime.UtcNow + TimeSpan.FromSeconds(30);
        while (!await condition())
        {
            Assert.True(DateTime.UtcNow < deadline, $"timed out waiting for {what}");
            await Task.Delay(50);
        }
    }

    private static int CountOccurrences(string text, string value)
    {
        var count = 0;
        for (var i = text.IndexOf(value, StringComparison.Ordinal); i >= 0; i = text.IndexOf(value, i + value.Length, StringComparison.Ordinal))
        {
            count++;
        }

        return count;
    }
}
