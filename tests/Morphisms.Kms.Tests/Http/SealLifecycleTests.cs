using System.Net;

namespace Morphisms.Kms.Tests.Http;

public class SealLifecycleTests
{
    [Fact]
    public async Task Init_unseal_seal_and_health_answer_like_vault()
    {
        await using var kms = await TestKms.StartAsync();
        var c = kms.Client;

        var health = (await c.GetAsync("sys/health")).Expect(501);
        Assert.False(health.Body!["initialized"]!.GetValue<bool>());
        Assert.True(health.Body["sealed"]!.GetValue<bool>());
        Assert.False((await c.GetAsync("sys/init")).Expect(200).Body!["initialized"]!.GetValue<bool>());
        Assert.Equal(["Vault is sealed"], (await c.GetAsync("secret/data/x")).Expect(503).Errors);

        Assert.Contains("cannot be larger", (await c.PutAsync("sys/init", new { secret_shares = 2, secret_threshold = 3 })).Expect(400).Errors[0], StringComparison.Ordinal);
        Assert.Contains("greater than one", (await c.PutAsync("sys/init", new { secret_shares = 3, secret_threshold = 1 })).Expect(400).Errors[0], StringComparison.Ordinal);
        Assert.Contains("secret_shares", (await c.PutAsync("sys/init", new { secret_threshold = 3 })).Expect(400).Errors[0], StringComparison.Ordinal);

        // The Shamir seal takes the Shamir pair only; recovery parameters stay ignored, and the reply has no recovery keys.
        var init = (await c.PutAsync("sys/init", new { secret_shares = 5, secret_threshold = 3, recovery_shares = 0, recovery_threshold = 0 })).Expect(200).Body!;
        Assert.Null(init["recovery_keys"]);
        Assert.Null(init["recovery_keys_base64"]);
        Assert.Equal(5, init["keys_base64"]!.AsArray().Count);
        kms.Keys.AddRange(init["keys"]!.AsArray().Select(k => k!.GetValue<string>()));
        kms.Client.Token = init["root_token"]!.GetValue<string>();
        Assert.Equal(5, kms.Keys.Count);
        Assert.All(kms.Keys, k => Assert.Equal(66, k.Length));
        Assert.StartsWith("hvs.", kms.Client.Token, StringComparison.Ordinal);
        Assert.Equal(["Vault is already initialized"], (await c.PutAsync("sys/init", new { secret_shares = 1, secret_threshold = 1 })).Expect(400).Errors);

        // Initialised but still sealed until enough shares arrive.
        var status = (await c.GetAsync("sys/seal-status")).Expect(200).Body!;
        Assert.True(status["sealed"]!.GetValue<bool>());
        Assert.Equal(3, status["t"]!.GetValue<int>());
        Assert.Equal(5, status["n"]!.GetValue<int>());
        (await c.GetAsync("sys/health")).Expect(503);
        (await c.GetAsync("auth/token/lookup-self")).Expect(503);

        var first = (await c.PutAsync("sys/unseal", new { key = kms.Keys[0] })).Expect(200).Body!;
        Assert.Equal(1, first["progress"]!.GetValue<int>());
        Assert.NotEqual("", first["nonce"]!.GetValue<string>());
        (await c.PutAsync("sys/unseal", new { key = kms.Keys[0] })).Expect(200);
        Assert.Equal(1, (await c.GetAsync("sys/seal-status")).Body!["progress"]!.GetValue<int>());
        var reset = (await c.PutAsync("sys/unseal", new { reset = true })).Expect(200).Body!;
        Assert.Equal(0, reset["progress"]!.GetValue<int>());
        Assert.Equal("", reset["nonce"]!.GetValue<string>());

        // Base64 keys work too, as Vault accepts keys_base64.
        await c.PutAsync("sys/unseal", new { key = Convert.ToBase64String(Convert.FromHexString(kms.Keys[1])) });
        await c.PutAsync("sys/unseal", new { key = kms.Keys[3] });
        var unsealed = (await c.PutAsync("sys/unseal", new { key = kms.Keys[4] })).Expect(200).Body!;
        Assert.False(unsealed["sealed"]!.GetValue<bool>());
        Assert.NotNull(unsealed["cluster_id"]);

        var active = (await c.GetAsync("sys/health")).Expect(200).Body!;
        Assert.False(active["sealed"]!.GetValue<bool>());
        Assert.False(active["standby"]!.GetValue<bool>());
        Assert.Equal(kms.Time.GetUtcNow().ToUnixTimeSeconds(), active["server_time_utc"]!.GetValue<long>());
        Assert.False((await c.GetAsync("sys/leader")).Expect(200).Body!["ha_enabled"]!.GetValue<bool>());

        (await c.PutAsync("sys/seal", token: "")).Expect(403);
        (await c.PutAsync("sys/seal")).Expect(204);
        (await c.GetAsync("sys/health")).Expect(503);
        (await c.GetAsync("secret/data/x")).Expect(503);
        await kms.UnsealAsync();
        (await c.GetAsync("sys/health")).Expect(200);
    }

    [Fact]
    public async Task Wrong_shares_fail_the_unseal_and_reset_progress()
    {
        await using var kms = await TestKms.StartAsync();
        await kms.InitAsync(3, 2);
        var c = kms.Client;

        var forged = Convert.FromHexString(kms.Keys[0]);
        forged[3] ^= 0xFF;
        await c.PutAsync("sys/unseal", new { key = Convert.ToHexString(forged) });
        var failed = (await c.PutAsync("sys/unseal", new { key = kms.Keys[1] })).Expect(400);
        Assert.Contains("do not decrypt the root key", failed.Errors[0], StringComparison.Ordinal);
        Assert.Equal(0, (await c.GetAsync("sys/seal-status")).Body!["progress"]!.GetValue<int>());

        Assert.Contains("33 bytes", (await c.PutAsync("sys/unseal", new { key = "abcd" })).Expect(400).Errors[0], StringComparison.Ordinal);
        Assert.Contains("hex or base64", (await c.PutAsync("sys/unseal", new { key = "not a key!" })).Expect(400).Errors[0], StringComparison.Ordinal);
        (await c.PutAsync("sys/unseal", new { })).Expect(400);

        await kms.UnsealAsync();
        Assert.False(kms.Server.Sealed);
    }

    [Fact]
    public async Task Health_status_codes_follow_the_query_parameters()
    {
        await using var kms = await TestKms.StartAsync();
        var c = kms.Client;
        (await c.GetAsync("sys/health?uninitcode=200")).Expect(200);
        Assert.Contains("uninitcode", (await c.GetAsync("sys/health?uninitcode=abc")).Expect(400).Errors[0], StringComparison.Ordinal);
        (await c.GetAsync("sys/health?uninitcode=99")).Expect(400);
        await kms.InitAsync(1, 1);
        (await c.GetAsync("sys/health?sealedcode=299&standbyok=true")).Expect(299);
        await kms.UnsealAsync();
        (await c.GetAsync("sys/health?activecode=204")).Expect(204);

        using var head = await c.Http.SendAsync(new HttpRequestMessage(HttpMethod.Head, "/v1/sys/health"));
        Assert.Equal(HttpStatusCode.OK, head.StatusCode);
        Assert.Empty(await head.Content.ReadAsByteArrayAsync());
    }

    [Fact]
    public async Task Rotation_adds_a_keyring_term_without_losing_data()
    {
        await using var kms = await TestKms.StartUnsealedAsync();
        var c = kms.Client;
        (await c.PostAsync("secret/data/before", new { data = new { v = "1" } })).Expect(200);
        Assert.Equal(1, (await c.GetAsync("sys/key-status")).Expect(200).Data["term"]!.GetValue<int>());
        (await c.PutAsync("sys/rotate")).Expect(204);
        Assert.Equal(2, (await c.GetAsync("sys/key-status")).Data["term"]!.GetValue<int>());
        (await c.PostAsync("secret/data/after", new { data = new { v = "2" } })).Expect(200);

        (await c.PutAsync("sys/seal")).Expect(204);
        await kms.UnsealAsync();
        Assert.Equal("1", (await c.GetAsync("secret/data/before")).Expect(200).Data["data"]!["v"]!.GetValue<string>());
        Assert.Equal("2", (await c.GetAsync("secret/data/after")).Expect(200).Data["data"]!["v"]!.GetValue<string>());
    }
}
