using System.Collections.Concurrent;
using Morphisms.Kms.Barrier;
using Morphisms.Kms.Storage;

namespace Morphisms.Kms.Tests.Barrier;

/// <summary>
/// Automatic barrier key rotation (<c>sys/rotate/config</c>): encryptions are counted per term, persisted, and a new
/// term is added once <c>max_operations</c> is reached.
/// </summary>
public class AutoRotateTests
{
    private const long PersistEvery = 20;

    private static Func<KmsServerOptions, KmsServerOptions> SmallLimits(TextWriter? log = null) =>
        o => o with { MinRotateMaxOperations = 10, BarrierEncryptionsPersistEvery = PersistEvery, WarningWriter = log ?? TextWriter.Null };

    private static async Task<(uint Term, long Encryptions, int Terms)> KeyStatusAsync(TestKms kms)
    {
        var data = (await kms.Client.GetAsync("sys/key-status")).Expect(200).Data;
        return (data["term"]!.GetValue<uint>(), data["encryptions"]!.GetValue<long>(), data["terms"]!.GetValue<int>());
    }

    private static async Task WaitForAsync(Func<Task<bool>> condition, string what)
    {
        var deadline = DateTime.UtcNow + TimeSpan.FromSeconds(20);
        while (!await condition())
        {
            Assert.True(DateTime.UtcNow < deadline, "timed out waiting for " + what);
            await Task.Delay(20);
        }
    }

    // TextWriter.Synchronized's writer locks itself around each write.
    private static string GetText(TextWriter log, StringWriter text)
    {
        lock (log)
        {
            return text.ToString();
        }
    }

    [Fact]
    public async Task Reaching_max_operations_rotates_once_in_the_background_and_old_data_still_reads()
    {
        var text = new StringWriter();
        var log = TextWriter.Synchronized(text);
        await using var kms = await TestKms.StartUnsealedAsync(SmallLimits(log));
        var c = kms.Client;
        const long max = 200;
        (await c.PostAsync("sys/rotate/config", new { max_operations = max })).Expect(204);
        var config = (await c.GetAsync("sys/rotate/config")).Expect(200).Data;
        Assert.Equal(max, config["max_operations"]!.GetValue<long>());
        Assert.True(config["enabled"]!.GetValue<bool>());

        var before = await KeyStatusAsync(kms);
        Assert.Equal(1u, before.Term);
        Assert.True(before.Encryptions is > 0 and < max, $"{before.Encryptions}");

        // Writers race past the limit together; the first term's count crosses max_operations once, and one loop rotates.
        // They write a fixed number of times, enough to pass the limit by well under another max_operations, so the new
        // term cannot reach it too however late the rotation runs on a loaded machine.
        (await c.PutAsync("secret/data/auto/probe", new { data = new { value = "p" } })).Expect(200);
        var perWrite = (await KeyStatusAsync(kms)).Encryptions - before.Encryptions;
        Assert.True(perWrite is > 0 and < 20, $"{perWrite} encryptions per KV write");
        var current = (await KeyStatusAsync(kms)).Encryptions;
        var writes = (int)((max - current + perWrite - 1) / perWrite) + 12;
        Assert.True(current + writes * perWrite < 2 * max - 20, $"{writes} writes of {perWrite} from {current}");
        var written = new ConcurrentDictionary<string, string>();
        var next = -1;
        async Task Writer(int w)
        {
            for (int i; (i = Interlocked.Increment(ref next)) < writes;)
            {
                var (path, value) = ($"auto/w{w}/k{i}", $"v{w}-{i}");
                (await c.PutAsync("secret/data/" + path, new { data = new { value } })).Expect(200);
                written[path] = value;
            }
        }

        await Task.WhenAll(Enumerable.Range(0, 6).Select(Writer));
        await WaitForAsync(async () => (await KeyStatusAsync(kms)).Term > 1, "the automatic rotation");

        var after = await KeyStatusAsync(kms);
        Assert.Equal(2u, after.Term);
        Assert.Equal(2, after.Terms);
        Assert.True(after.Encryptions < max, $"the new term counts from zero: {after.Encryptions}");
        await WaitForAsync(() => Task.FromResult(GetText(log, text).Contains("barrier key rotated automatically: term 2 installed", StringComparison.Ordinal)), "the rotation's log line");

        // Old ciphertexts (term 1) read back, now and after the keyring is reloaded; new writes use term 2.
        Assert.Contains(kms.Storage!.Snapshot().Where(e => e.Key.Contains("/auto/", StringComparison.Ordinal)), e => AesGcmEnvelope.ReadTerm(e.Value) == 1);
        (await c.PutAsync("secret/data/fresh", new { data = new { value = "x" } })).Expect(200);
        Assert.All(kms.Storage.Snapshot().Where(e => e.Key.Contains("fresh", StringComparison.Ordinal)), e => Assert.Equal(2u, AesGcmEnvelope.ReadTerm(e.Value)));
        (await c.PutAsync("sys/seal")).Expect(204);
        await kms.UnsealAsync();
        foreach (var (path, value) in written)
        {
            Assert.Equal(value, (await c.GetAsync("secret/data/" + path)).Expect(200).Data["data"]!["value"]!.GetValue<string>());
        }
    }

    [Fact]
    public async Task Disabled_rotation_keeps_counting_and_rotates_once_enabled()
    {
        await using var kms = await TestKms.StartUnsealedAsync(SmallLimits());
        var c = kms.Client;
        (await c.PostAsync("sys/rotate/config", new { max_operations = 100, enabled = false })).Expect(204);
        for (var i = 0; (await KeyStatusAsync(kms)).Encryptions < 150; i++)
        {
            (await c.PutAsync($"secret/data/d{i}", new { data = new { v = i } })).Expect(200);
        }

        await Task.Delay(200);
        Assert.Equal(1u, (await KeyStatusAsync(kms)).Term);

        (await c.PostAsync("sys/rotate/config", new { enabled = true })).Expect(204);
        Assert.Equal(100, (await c.GetAsync("sys/rotate/config")).Expect(200).Data["max_operations"]!.GetValue<long>());
        await WaitForAsync(async () => (await KeyStatusAsync(kms)).Term == 2, "the rotation once enabled");
    }

    [Fact]
    public async Task The_count_survives_a_seal()
    {
        // No mark is reached (half of 1000) and the clock stands still: only the seal persists the count.
        const long margin = 1000;
        await using var kms = await TestKms.StartUnsealedAsync(o => SmallLimits()(o) with { BarrierEncryptionsPersistEvery = margin });
        var c = kms.Client;
        for (var i = 0; i < 40; i++)
        {
            (await c.PutAsync($"secret/data/p{i}", new { data = new { v = i } })).Expect(200);
        }

        var sealedAt = (await KeyStatusAsync(kms)).Encryptions;
        Assert.InRange(sealedAt, margin + 40, margin + (margin / 2) - 1);

        // The seal persists the final count; the unseal adds the margin on top.
        (await c.PutAsync("sys/seal")).Expect(204);
        await kms.UnsealAsync();
        var unsealed = await KeyStatusAsync(kms);
        Assert.Equal(1u, unsealed.Term);
        Assert.InRange(unsealed.Encryptions, sealedAt + margin, sealedAt + margin + 5);
    }

    [Fact]
    public async Task The_count_survives_a_crash()
    {
        await using var kms = await TestKms.StartUnsealedAsync(SmallLimits());
        var c = kms.Client;
        for (var i = 0; i < 40; i++)
        {
            (await c.PutAsync($"secret/data/q{i}", new { data = new { v = i } })).Expect(200);
        }

        // A crash persists nothing at the end: a copy of the store taken while serving (once the loop caught up with
        // the last mark) still opens with at least the count of when the copy was taken.
        await Task.Delay(200);
        var counted = (await KeyStatusAsync(kms)).Encryptions;
        Assert.True(counted > 4 * PersistEvery, $"{counted}");
        var copy = new InMemoryStorage();
        foreach (var (key, value) in kms.Storage!.Snapshot())
        {
            await copy.PutAsync(key, value);
        }

        await using var restarted = await TestKms.StartAsync(SmallLimits(), physical: copy);
        restarted.Keys.AddRange(kms.Keys);
        restarted.Client.Token = kms.RootToken;
        await restarted.UnsealAsync();
        var reloaded = await KeyStatusAsync(restarted);
        Assert.True(reloaded.Encryptions >= counted, $"after a crash the count went back from {counted} to {reloaded.Encryptions}");
    }

    [Fact]
    public async Task A_lapsed_interval_rotates()
    {
        await using var kms = await TestKms.StartUnsealedAsync(SmallLimits());
        var c = kms.Client;
        (await c.PostAsync("sys/rotate/config", new { interval = "24h" })).Expect(204);
        Assert.Equal("24h0m0s", (await c.GetAsync("sys/rotate/config")).Expect(200).Data["interval"]!.GetValue<string>());
        kms.Time.Advance(TimeSpan.FromHours(23));
        await Task.Delay(200);
        Assert.Equal(1u, (await KeyStatusAsync(kms)).Term);
        kms.Time.Advance(TimeSpan.FromHours(1));
        await WaitForAsync(async () => (await KeyStatusAsync(kms)).Term == 2, "the interval rotation");
    }

    [Fact]
    public async Task Bad_rotate_config_is_a_400_naming_the_field_and_changes_nothing()
    {
        // Vault's limits, as the API always enforces them.
        await using var kms = await TestKms.StartUnsealedAsync();
        var c = kms.Client;
        var original = (await c.GetAsync("sys/rotate/config")).Expect(200).Data.ToJsonString();
        Assert.Contains("\"max_operations\":3865470566", original, StringComparison.Ordinal);
        foreach (var (body, field) in new (object Body, string Field)[]
        {
            (new { max_operations = 999_999, enabled = false }, "max_operations"),
            (new { max_operations = 3_865_470_567L }, "max_operations"),
            (new { max_operations = "many" }, "max_operations"),
            (new { max_operations = 2_000_000, interval = "1h" }, "interval"),
            (new { interval = "soon" }, "interval"),
            (new { max_operations = 2_000_000, enabled = "maybe" }, "enabled"),
            (new { max_ops = 2_000_000 }, "max_ops"),
        })
        {
            var r = (await c.PostAsync("sys/rotate/config", body)).Expect(400);
            Assert.Contains($"'{field}'", r.Raw, StringComparison.Ordinal);
        }

        Assert.Equal(original, (await c.GetAsync("sys/rotate/config")).Expect(200).Data.ToJsonString());

        // Root-protected: update and read without sudo are refused.
        (await c.PutAsync("sys/policy/rot", new { policy = """path "sys/rotate/config" { capabilities = ["read", "update"] }""" })).Expect(204);
        var token = (await c.PostAsync("auth/token/create", new { policies = new[] { "rot" } })).Expect(200).Auth["client_token"]!.GetValue<string>();
        (await c.PostAsync("sys/rotate/config", new { max_operations = 2_000_000 }, token)).Expect(403);
        (await c.GetAsync("sys/rotate/config", token)).Expect(403);
        Assert.Equal(original, (await c.GetAsync("sys/rotate/config")).Expect(200).Data.ToJsonString());

        (await c.PostAsync("sys/rotate/config", new { max_operations = 1_000_000, interval = "2160h", enabled = false })).Expect(204);
        var changed = (await c.GetAsync("sys/rotate/config")).Expect(200).Data;
        Assert.Equal(1_000_000, changed["max_operations"]!.GetValue<long>());
        Assert.Equal("2160h0m0s", changed["interval"]!.GetValue<string>());
        Assert.False(changed["enabled"]!.GetValue<bool>());
    }

    [Fact]
    public async Task Racing_rotations_from_one_term_make_one_new_term()
    {
        var physical = new InMemoryStorage();
        var barrier = new BarrierStorage(physical, Keyring.Create(DateTimeOffset.UnixEpoch));
        var rootKey = new byte[32];
        var results = await Task.WhenAll(Enumerable.Range(0, 8).Select(_ => Task.Run(() => barrier.RotateFromAsync(rootKey, 1, DateTimeOffset.UnixEpoch, CancellationToken.None))));
        Assert.Single(results, r => r is not null);
        Assert.Equal(2u, barrier.Keyring.ActiveTerm);
        Assert.Equal(2, barrier.Keyring.Terms.Count());
    }
}
