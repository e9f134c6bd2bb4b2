namespace Morphisms.Kms.Tests.Seal;

public class RekeyTests
{
    [Fact]
    public async Task Rekey_replaces_the_shares_old_ones_stop_working_and_data_survives()
    {
        await using var kms = await TestKms.StartUnsealedAsync(shares: 3, threshold: 2);
        var c = kms.Client;
        (await c.PutAsync("secret/data/app", new { data = new { password = "p1" } })).Expect(200);

        Assert.False((await c.GetAsync("sys/rekey/init", token: "")).Expect(200).Body!["started"]!.GetValue<bool>());
        Assert.Contains("secret_threshold", (await c.PutAsync("sys/rekey/init", new { secret_shares = 5 })).Expect(400).Errors[0], StringComparison.Ordinal);
        Assert.Contains("cannot be larger", (await c.PutAsync("sys/rekey/init", new { secret_shares = 2, secret_threshold = 3 })).Expect(400).Errors[0], StringComparison.Ordinal);
        (await c.PutAsync("sys/rekey/update", new { key = kms.Keys[0], nonce = "x" })).Expect(400);

        // Start, cancel, start again: the cancelled nonce is dead.
        var first = (await c.PutAsync("sys/rekey/init", new { secret_shares = 5, secret_threshold = 3 }, token: "")).Expect(200).Body!;
        var cancelledNonce = first["nonce"]!.GetValue<string>();
        Assert.True(first["started"]!.GetValue<bool>());
        Assert.Equal(2, first["required"]!.GetValue<int>());
        Assert.Contains("already in progress", (await c.PutAsync("sys/rekey/init", new { secret_shares = 5, secret_threshold = 3 })).Expect(400).Errors[0], StringComparison.Ordinal);
        (await c.DeleteAsync("sys/rekey/init", token: "")).Expect(204);
        Assert.False((await c.GetAsync("sys/rekey/init")).Body!["started"]!.GetValue<bool>());

        var nonce = (await c.PutAsync("sys/rekey/init", new { secret_shares = 5, secret_threshold = 3 })).Expect(200).Body!["nonce"]!.GetValue<string>();
        Assert.NotEqual(cancelledNonce, nonce);
        Assert.Contains("nonce", (await c.PutAsync("sys/rekey/update", new { key = kms.Keys[0], nonce = cancelledNonce })).Expect(400).Errors[0], StringComparison.Ordinal);
        Assert.Contains("'key'", (await c.PutAsync("sys/rekey/update", new { nonce })).Expect(400).Errors[0], StringComparison.Ordinal);
        Assert.Contains("'nonce'", (await c.PutAsync("sys/rekey/update", new { key = kms.Keys[0] })).Expect(400).Errors[0], StringComparison.Ordinal);

        var progress = (await c.PutAsync("sys/rekey/update", new { key = kms.Keys[0], nonce })).Expect(200).Body!;
        Assert.Equal(1, progress["progress"]!.GetValue<int>());
        var done = (await c.PutAsync("sys/rekey/update", new { key = kms.Keys[2], nonce }, token: "")).Expect(200).Body!;
        Assert.True(done["complete"]!.GetValue<bool>());
        var newKeys = done["keys"]!.AsArray().Select(k => k!.GetValue<string>()).ToList();
        Assert.Equal(5, newKeys.Count);
        Assert.Equal(5, done["keys_base64"]!.AsArray().Count);
        Assert.False((await c.GetAsync("sys/rekey/init")).Body!["started"]!.GetValue<bool>());
        var status = (await c.GetAsync("sys/seal-status")).Body!;
        Assert.Equal(5, status["n"]!.GetValue<int>());
        Assert.Equal(3, status["t"]!.GetValue<int>());

        // Old shares no longer unseal; three new ones do, and the data is intact.
        (await c.PutAsync("sys/seal")).Expect(204);
        (await c.PutAsync("sys/unseal", new { key = kms.Keys[0] })).Expect(200);
        (await c.PutAsync("sys/unseal", new { key = kms.Keys[1] })).Expect(200);
        Assert.Contains("do not decrypt the root key", (await c.PutAsync("sys/unseal", new { key = kms.Keys[2] })).Expect(400).Errors[0], StringComparison.Ordinal);
        foreach (var key in newKeys.Take(2))
        {
            Assert.True((await c.PutAsync("sys/unseal", new { key })).Expect(200).Body!["sealed"]!.GetValue<bool>());
        }

        Assert.False((await c.PutAsync("sys/unseal", new { key = newKeys[4] })).Expect(200).Body!["sealed"]!.GetValue<bool>());
        Assert.Equal("p1", (await c.GetAsync("secret/data/app")).Expect(200).Data["data"]!["password"]!.GetValue<string>());
    }

    [Fact]
    public async Task Rekey_with_wrong_shares_fails_and_keeps_the_old_shares()
    {
        await using var kms = await TestKms.StartUnsealedAsync(shares: 3, threshold: 2);
        var c = kms.Client;
        var nonce = (await c.PutAsync("sys/rekey/init", new { secret_shares = 1, secret_threshold = 1 })).Expect(200).Body!["nonce"]!.GetValue<string>();
        var forged = Convert.FromHexString(kms.Keys[0]);
        forged[5] ^= 0x55;
        (await c.PutAsync("sys/rekey/update", new { key = Convert.ToHexString(forged), nonce })).Expect(200);
        Assert.Contains("do not decrypt the root key", (await c.PutAsync("sys/rekey/update", new { key = kms.Keys[1], nonce })).Expect(400).Errors[0], StringComparison.Ordinal);
        Assert.Equal(0, (await c.GetAsync("sys/rekey/init")).Body!["progress"]!.GetValue<int>());

        (await c.PutAsync("sys/seal")).Expect(204);
        await kms.UnsealAsync();
    }

    [Fact]
    public async Task A_seal_abandons_the_rekey_attempt_and_wipes_the_shares_it_collected()
    {
        // Through sys/seal: the attempt and its progress are gone once unsealed again.
        await using var kms = await TestKms.StartUnsealedAsync(shares: 3, threshold: 3);
        var c = kms.Client;
        var nonce = (await c.PutAsync("sys/rekey/init", new { secret_shares = 1, secret_threshold = 1 })).Expect(200).Body!["nonce"]!.GetValue<string>();
        Assert.Equal(1, (await c.PutAsync("sys/rekey/update", new { key = kms.Keys[0], nonce })).Expect(200).Body!["progress"]!.GetValue<int>());
        (await c.PutAsync("sys/seal")).Expect(204);
        await kms.Server.SealClosing.WaitAsync(TimeSpan.FromSeconds(30));
        await kms.UnsealAsync();
        Assert.False((await c.GetAsync("sys/rekey/init")).Expect(200).Body!["started"]!.GetValue<bool>());
        Assert.Contains("no rekey in progress", (await c.PutAsync("sys/rekey/update", new { key = kms.Keys[1], nonce })).Expect(400).Errors[0], StringComparison.Ordinal);

        // Through SealAsync (shutdown): the collected share is zeroed in memory, not just forgotten.
        var time = new Microsoft.Extensions.Time.Testing.FakeTimeProvider(new DateTimeOffset(2026, 11, 22, 12, 0, 0, TimeSpan.Zero));
        await using var core = new KmsCore(new Morphisms.Kms.Storage.InMemoryStorage(), new KmsServerOptions { Storage = "inmem", TimeProvider = time, WarningWriter = TextWriter.Null });
        var init = await core.InitializeAsync(3, 3, CancellationToken.None);
        foreach (var key in init.Keys)
        {
            await core.SubmitUnsealKeyAsync(key.ToArray(), CancellationToken.None);
        }

        var attempt = await core.RekeyInitAsync(1, 1, CancellationToken.None);
        var share = init.Keys[0].ToArray();
        Assert.Null(await core.RekeyUpdateAsync(share, attempt.Nonce, CancellationToken.None));
        Assert.Equal(1, attempt.Shares.Count);
        await core.SealAsync();
        Assert.Null(core.Rekey);
        Assert.Equal(0, attempt.Shares.Count);
        Assert.All(share, b => Assert.Equal(0, b));
    }

    [Fact]
    public async Task Rekey_needs_an_unsealed_kms()
    {
        await using var kms = await TestKms.StartUnsealedAsync(shares: 1, threshold: 1);
        (await kms.Client.PutAsync("sys/seal")).Expect(204);
        (await kms.Client.PutAsync("sys/rekey/init", new { secret_shares = 1, secret_threshold = 1 })).Expect(503);
    }
}
