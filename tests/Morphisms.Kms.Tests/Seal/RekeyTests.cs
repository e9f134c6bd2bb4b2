using Morphisms.Kms.Seal;

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
    public async Task With_verification_the_old_shares_stay_in_force_until_a_threshold_of_the_new_ones_comes_back()
    {
        await using var kms = await TestKms.StartUnsealedAsync(shares: 3, threshold: 2);
        var c = kms.Client;
        (await c.PutAsync("secret/data/app", new { data = new { password = "p1" } })).Expect(200);
        var init = (await c.PutAsync("sys/rekey/init", new { secret_shares = 5, secret_threshold = 3, require_verification = true }, token: "")).Expect(200).Body!;
        Assert.True(init["verification_required"]!.GetValue<bool>());
        var nonce = init["nonce"]!.GetValue<string>();
        (await c.GetAsync("sys/rekey/verify")).Expect(400);
        (await c.PutAsync("sys/rekey/update", new { key = kms.Keys[0], nonce })).Expect(200);
        var done = (await c.PutAsync("sys/rekey/update", new { key = kms.Keys[1], nonce })).Expect(200).Body!;
        Assert.True(done["complete"]!.GetValue<bool>());
        Assert.True(done["verification_required"]!.GetValue<bool>());
        var newKeys = done["keys"]!.AsArray().Select(k => k!.GetValue<string>()).ToList();
        Assert.Equal(5, newKeys.Count);
        var verifyNonce = done["verification_nonce"]!.GetValue<string>();

        // Nothing switched yet: the seal config is the old one, the rekey waits, and updates are refused.
        var status = (await c.GetAsync("sys/rekey/init")).Expect(200).Body!;
        Assert.True(status["started"]!.GetValue<bool>());
        Assert.Equal(verifyNonce, status["verification_nonce"]!.GetValue<string>());
        Assert.Equal(2, (await c.GetAsync("sys/seal-status")).Body!["t"]!.GetValue<int>());
        Assert.Contains("waiting for verification", (await c.PutAsync("sys/rekey/update", new { key = kms.Keys[2], nonce })).Expect(400).Errors[0], StringComparison.Ordinal);
        Assert.Contains("already in progress", (await c.PutAsync("sys/rekey/init", new { secret_shares = 1, secret_threshold = 1 })).Expect(400).Errors[0], StringComparison.Ordinal);

        // The pending wrapping is stored under the barrier, not in plain text next to core/root-key.
        var pending = await kms.Storage!.GetAsync(PendingRekey.StoragePath);
        Assert.NotNull(pending);
        Assert.DoesNotContain("secret_shares", System.Text.Encoding.UTF8.GetString(pending), StringComparison.Ordinal);

        var verify = (await c.GetAsync("sys/rekey/verify", token: "")).Expect(200).Body!;
        Assert.Equal(verifyNonce, verify["nonce"]!.GetValue<string>());
        Assert.Equal(3, verify["t"]!.GetValue<int>());
        Assert.Equal(5, verify["n"]!.GetValue<int>());
        Assert.Equal(0, verify["progress"]!.GetValue<int>());

        // A wrong nonce changes nothing; DELETE restarts the verification with a fresh nonce.
        Assert.Contains("'nonce'", (await c.PutAsync("sys/rekey/verify", new { key = newKeys[0], nonce })).Expect(400).Errors[0], StringComparison.Ordinal);
        Assert.Equal(0, (await c.GetAsync("sys/rekey/verify")).Body!["progress"]!.GetValue<int>());
        Assert.Equal(1, (await c.PutAsync("sys/rekey/verify", new { key = newKeys[0], nonce = verifyNonce })).Expect(200).Body!["progress"]!.GetValue<int>());
        var restarted = (await c.DeleteAsync("sys/rekey/verify")).Expect(200).Body!;
        Assert.Equal(0, restarted["progress"]!.GetValue<int>());
        Assert.NotEqual(verifyNonce, restarted["nonce"]!.GetValue<string>());
        Assert.Contains("'nonce'", (await c.PutAsync("sys/rekey/verify", new { key = newKeys[0], nonce = verifyNonce })).Expect(400).Errors[0], StringComparison.Ordinal);
        verifyNonce = restarted["nonce"]!.GetValue<string>();

        // Old shares are not new ones: the verification fails (x coordinates are random, so the mix may also have
        // a repeated one), progress resets, nothing changes.
        (await c.PutAsync("sys/rekey/verify", new { key = newKeys[0], nonce = verifyNonce })).Expect(200);
        (await c.PutAsync("sys/rekey/verify", new { key = kms.Keys[0], nonce = verifyNonce })).Expect(200);
        Assert.StartsWith("rekey verification failed: ", (await c.PutAsync("sys/rekey/verify", new { key = kms.Keys[1], nonce = verifyNonce })).Expect(400).Errors[0], StringComparison.Ordinal);
        Assert.Equal(0, (await c.GetAsync("sys/rekey/verify")).Body!["progress"]!.GetValue<int>());
        Assert.Equal(2, (await c.GetAsync("sys/seal-status")).Body!["t"]!.GetValue<int>());

        // A threshold of the new shares switches, atomically: new config, pending record gone.
        (await c.PutAsync("sys/rekey/verify", new { key = newKeys[4], nonce = verifyNonce })).Expect(200);
        (await c.PutAsync("sys/rekey/verify", new { key = newKeys[2], nonce = verifyNonce })).Expect(200);
        var verified = (await c.PutAsync("sys/rekey/verify", new { key = newKeys[1], nonce = verifyNonce })).Expect(200).Body!;
        Assert.True(verified["complete"]!.GetValue<bool>());
        Assert.Equal(verifyNonce, verified["nonce"]!.GetValue<string>());
        Assert.Null(await kms.Storage.GetAsync(PendingRekey.StoragePath));
        Assert.False((await c.GetAsync("sys/rekey/init")).Body!["started"]!.GetValue<bool>());
        Assert.Equal(3, (await c.GetAsync("sys/seal-status")).Body!["t"]!.GetValue<int>());

        // The old shares no longer unseal; the new ones do, and the data is intact.
        (await c.PutAsync("sys/seal")).Expect(204);
        (await c.PutAsync("sys/unseal", new { key = kms.Keys[0] })).Expect(200);
        (await c.PutAsync("sys/unseal", new { key = kms.Keys[1] })).Expect(200);
        Assert.Contains("do not decrypt the root key", (await c.PutAsync("sys/unseal", new { key = kms.Keys[2] })).Expect(400).Errors[0], StringComparison.Ordinal);
        foreach (var key in newKeys.Take(2))
        {
            (await c.PutAsync("sys/unseal", new { key })).Expect(200);
        }

        Assert.False((await c.PutAsync("sys/unseal", new { key = newKeys[3] })).Expect(200).Body!["sealed"]!.GetValue<bool>());
        Assert.Equal("p1", (await c.GetAsync("secret/data/app")).Expect(200).Data["data"]!["password"]!.GetValue<string>());
    }

    [Fact]
    public async Task A_lost_rekey_reply_with_verification_leaves_the_old_shares_working()
    {
        await using var kms = await TestKms.StartUnsealedAsync(shares: 3, threshold: 2);
        var c = kms.Client;
        var nonce = (await c.PutAsync("sys/rekey/init", new { secret_shares = 3, secret_threshold = 2, require_verification = true })).Expect(200).Body!["nonce"]!.GetValue<string>();
        (await c.PutAsync("sys/rekey/update", new { key = kms.Keys[0], nonce })).Expect(200);
        var lost = (await c.PutAsync("sys/rekey/update", new { key = kms.Keys[1], nonce })).Expect(200).Body!;
        var newKeys = lost["keys"]!.AsArray().Select(k => k!.GetValue<string>()).ToList();

        // The reply never reached the holders: seal, and the old shares still unseal.
        (await c.PutAsync("sys/seal")).Expect(204);
        await kms.Server.SealClosing.WaitAsync(TimeSpan.FromSeconds(30));
        await kms.UnsealAsync();

        // The rekey still waits for its new shares (with a fresh verification nonce), and cancelling it drops them for good.
        var status = (await c.GetAsync("sys/rekey/init")).Expect(200).Body!;
        Assert.True(status["started"]!.GetValue<bool>());
        Assert.Equal(nonce, status["nonce"]!.GetValue<string>());
        var verifyNonce = (await c.GetAsync("sys/rekey/verify")).Expect(200).Body!["nonce"]!.GetValue<string>();
        Assert.NotEqual(lost["verification_nonce"]!.GetValue<string>(), verifyNonce);
        (await c.DeleteAsync("sys/rekey/init")).Expect(204);
        Assert.Null(await kms.Storage!.GetAsync(PendingRekey.StoragePath));
        Assert.Contains("no rekey verification", (await c.PutAsync("sys/rekey/verify", new { key = newKeys[0], nonce = verifyNonce })).Expect(400).Errors[0], StringComparison.Ordinal);

        (await c.PutAsync("sys/seal")).Expect(204);
        await kms.Server.SealClosing.WaitAsync(TimeSpan.FromSeconds(30));
        (await c.PutAsync("sys/unseal", new { key = newKeys[0] })).Expect(200);
        Assert.Contains("do not decrypt the root key", (await c.PutAsync("sys/unseal", new { key = newKeys[1] })).Expect(400).Errors[0], StringComparison.Ordinal);
        await kms.UnsealAsync();
    }

    [Fact]
    public async Task A_rekey_waiting_for_verification_survives_a_seal_and_its_new_shares_still_verify()
    {
        await using var kms = await TestKms.StartUnsealedAsync(shares: 1, threshold: 1);
        var c = kms.Client;
        var nonce = (await c.PutAsync("sys/rekey/init", new { secret_shares = 1, secret_threshold = 1, require_verification = true })).Expect(200).Body!["nonce"]!.GetValue<string>();
        var newKey = (await c.PutAsync("sys/rekey/update", new { key = kms.Keys[0], nonce })).Expect(200).Body!["keys"]![0]!.GetValue<string>();
        (await c.PutAsync("sys/seal")).Expect(204);
        await kms.Server.SealClosing.WaitAsync(TimeSpan.FromSeconds(30));
        await kms.UnsealAsync();

        var verifyNonce = (await c.GetAsync("sys/rekey/verify")).Expect(200).Body!["nonce"]!.GetValue<string>();
        Assert.Contains("'key'", (await c.PutAsync("sys/rekey/verify", new { key = "00", nonce = verifyNonce })).Expect(400).Errors[0], StringComparison.Ordinal);
        Assert.Contains("do not decrypt the pending root key", (await c.PutAsync("sys/rekey/verify", new { key = kms.Keys[0], nonce = verifyNonce })).Expect(400).Errors[0], StringComparison.Ordinal);
        Assert.True((await c.PutAsync("sys/rekey/verify", new { key = newKey, nonce = verifyNonce })).Expect(200).Body!["complete"]!.GetValue<bool>());
        (await c.PutAsync("sys/seal")).Expect(204);
        await kms.Server.SealClosing.WaitAsync(TimeSpan.FromSeconds(30));
        Assert.Contains("do not decrypt the root key", (await c.PutAsync("sys/unseal", new { key = kms.Keys[0] })).Expect(400).Errors[0], StringComparison.Ordinal);
        Assert.False((await c.PutAsync("sys/unseal", new { key = newKey })).Expect(200).Body!["sealed"]!.GetValue<bool>());
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
        var init = await core.InitializeAsync(3, 3, unseal: false, CancellationToken.None);
        foreach (var key in init.Keys)
        {
            await core.SubmitUnsealKeyAsync(key.ToArray(), CancellationToken.None);
        }

        var state = core.Acquire()!;
        var attempt = await core.RekeyInitAsync(1, 1, requireVerification: false, state, CancellationToken.None);
        var share = init.Keys[0].ToArray();
        Assert.Null(await core.RekeyUpdateAsync(share, attempt.Nonce, state, CancellationToken.None));
        state.Release();
        Assert.Equal(1, attempt.Shares.Count);
        await core.SealAsync();
        Assert.Null(core.Rekey);
        Assert.Equal(0, attempt.Shares.Count);
        Assert.All(share, b => Assert.Equal(0, b));
    }

    [Fact]
    public async Task A_rekey_status_read_racing_a_restore_does_not_bring_back_the_old_stores_pending_rekey()
    {
        var time = new Microsoft.Extensions.Time.Testing.FakeTimeProvider(new DateTimeOffset(2026, 11, 22, 12, 0, 0, TimeSpan.Zero));
        await using var core = new KmsCore(new Morphisms.Kms.Storage.InMemoryStorage(), new KmsServerOptions { Storage = "inmem", TimeProvider = time, WarningWriter = TextWriter.Null });
        var init = await core.InitializeAsync(1, 1, unseal: false, CancellationToken.None);
        await core.SubmitUnsealKeyAsync(init.Keys[0].ToArray(), CancellationToken.None);

        // A snapshot without a pending rekey; then a rekey waits for verification in the store it will replace.
        var state = core.Acquire()!;
        var snapshot = await core.TakeSnapshotAsync(state, CancellationToken.None);
        var attempt = await core.RekeyInitAsync(1, 1, requireVerification: true, state, CancellationToken.None);
        Assert.NotNull((await core.RekeyUpdateAsync(init.Keys[0].ToArray(), attempt.Nonce, state, CancellationToken.None))!.VerificationNonce);

        // A GET sys/rekey/init still running on the old state (its lease holds the store's replacement back) after
        // the restore ended the attempt: it is answered as sealed and loads nothing.
        Assert.True(await core.RestoreAsync(state, snapshot, allowForeign: false, CancellationToken.None));
        var refused = await Record.ExceptionAsync(() => core.LoadPendingRekeyAsync(state, CancellationToken.None));
        var loaded = core.Rekey;
        state.Release();
        await core.Closing.WaitAsync(TimeSpan.FromSeconds(30));
        Assert.Null(loaded);
        Assert.Equal(503, Assert.IsType<Morphisms.Kms.Http.KmsException>(refused).StatusCode);

        await core.SubmitUnsealKeyAsync(init.Keys[0].ToArray(), CancellationToken.None);
        state = core.Acquire()!;
        await core.LoadPendingRekeyAsync(state, CancellationToken.None);
        Assert.Null(core.Rekey);
        state.Release();
    }

    [Fact]
    public async Task Rekey_needs_an_unsealed_kms()
    {
        await using var kms = await TestKms.StartUnsealedAsync(shares: 1, threshold: 1);
        (await kms.Client.PutAsync("sys/seal")).Expect(204);
        (await kms.Client.PutAsync("sys/rekey/init", new { secret_shares = 1, secret_threshold = 1 })).Expect(503);
    }
}
