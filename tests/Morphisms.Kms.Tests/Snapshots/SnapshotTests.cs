using System.Text.Json.Nodes;
using Microsoft.Extensions.Time.Testing;
using Morphisms.Kms.Snapshots;
using Morphisms.Kms.Storage;

namespace Morphisms.Kms.Tests.Snapshots;

public class SnapshotTests
{
    // Long enough that random ciphertext cannot contain it by chance (a 2-byte marker did, now and then).
    private const string SecondPassword = "p2-7f3c9a1e5b2d4c6e8f0a1b3c5d7e9f21";

    private const string Snp48 = "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff";

    [Fact]
    public async Task A_snapshot_restored_into_a_fresh_kms_reads_identically()
    {
        await using var source = await TestKms.StartUnsealedAsync(shares: 3, threshold: 2);
        var c = source.Client;
        (await c.PutAsync("secret/data/db", new { data = new { password = "p1" } })).Expect(200);
        (await c.PutAsync("secret/data/db", new { data = new { password = SecondPassword } })).Expect(200);
        (await c.PutAsync("sys/policies/acl/reader", new { policy = """path "secret/data/*" { capabilities = ["read"] }""" })).Expect(204);
        var token = (await c.PostAsync("auth/token/create", new { policies = new[] { "reader" }, ttl = "1h" })).Expect(200).Auth["client_token"]!.GetValue<string>();
        (await c.PutAsync("morphisms/functions/signer", new { owners = new[] { "alice" }, policies = new[] { "reader" }, simulated = new { snp = new[] { Snp48 } } })).Expect(200);
        (await c.PutAsync("sys/rotate")).Expect(204);
        (await c.PutAsync("secret/data/after-rotate", new { data = new { v = "r" } })).Expect(200);

        var snapshot = (await c.GetAsync("sys/storage/snapshot")).Expect(200).Body!;
        (await c.GetAsync("sys/storage/snapshot", token)).Expect(403);

        // Only ciphertext: no secret value appears anywhere in the document.
        var entries = snapshot["entries"]!.AsArray();
        Assert.Contains(entries, e => e!["key"]!.GetValue<string>() == "core/root-key");
        Assert.DoesNotContain(SecondPassword, string.Concat(entries.Select(e => System.Text.Encoding.UTF8.GetString(Convert.FromBase64String(e!["value"]!.GetValue<string>())))), StringComparison.Ordinal);

        await using var target = await TestKms.StartUnsealedAsync();

        // Another KMS's snapshot would replace this one's root key, shares and root CA: not through the everyday path.
        var before = target.Storage!.Snapshot();
        var refused = (await target.Client.PostAsync("sys/storage/snapshot", snapshot.ToJsonString())).Expect(400).Errors[0];
        Assert.Contains("another KMS", refused, StringComparison.Ordinal);
        Assert.Contains("sys/storage/snapshot-force", refused, StringComparison.Ordinal);
        Assert.Equal(before.OrderBy(e => e.Key).Select(e => e.Key + Convert.ToHexString(e.Value)), target.Storage.Snapshot().OrderBy(e => e.Key).Select(e => e.Key + Convert.ToHexString(e.Value)));
        (await target.Client.GetAsync("sys/key-status")).Expect(200);
        (await target.Client.PostAsync("sys/storage/snapshot-force", snapshot.ToJsonString(), source.RootToken)).Expect(403);

        var restored = (await target.Client.PostAsync("sys/storage/snapshot-force", snapshot.ToJsonString())).Expect(200).Body!;
        Assert.Contains(restored["warnings"]!.AsArray(), w => w!.GetValue<string>().Contains("another root key", StringComparison.Ordinal));
        (await target.Client.GetAsync("secret/data/db")).Expect(503);

        // Sealed now; only the snapshot's shares open it.
        var t = target.Client;
        (await t.PutAsync("sys/unseal", new { key = source.Keys[0] })).Expect(200);
        Assert.False((await t.PutAsync("sys/unseal", new { key = source.Keys[2] })).Expect(200).Body!["sealed"]!.GetValue<bool>());
        t.Token = source.RootToken;
        foreach (var path in new[] { "secret/data/db", "secret/data/db?version=1", "secret/data/after-rotate", "sys/policies/acl/reader", "morphisms/functions/signer" })
        {
            Assert.Equal(Stable((await c.GetAsync(path)).Expect(200)), Stable((await t.GetAsync(path)).Expect(200)));
        }

        // The unseal added a term to the restored keyring (see the next test).
        Assert.Equal((await c.GetAsync("sys/key-status")).Expect(200).Data["term"]!.GetValue<int>() + 1, (await t.GetAsync("sys/key-status")).Expect(200).Data["term"]!.GetValue<int>());

        Assert.Equal(SecondPassword, (await t.GetAsync("secret/data/db", token)).Expect(200).Data["data"]!["password"]!.GetValue<string>());
        (await t.GetAsync("secret/data/db", target.RootToken)).Expect(403);
        (await t.PutAsync("secret/data/new", new { data = new { v = 1 } })).Expect(200);
    }

    [Fact]
    public async Task The_first_unseal_after_a_restore_starts_a_new_barrier_key_term_before_serving_and_only_once()
    {
        await using var kms = await TestKms.StartUnsealedAsync();
        var c = kms.Client;
        (await c.PutAsync("secret/data/db", new { data = new { password = "p1" } })).Expect(200);
        var snapshot = (await c.GetAsync("sys/storage/snapshot")).Expect(200).Body!;
        var snapshotTerm = (await c.GetAsync("sys/key-status")).Expect(200).Data["term"]!.GetValue<int>();

        // After the snapshot, its active term goes on encrypting: the snapshot's count knows nothing of these.
        for (var i = 0; i < 5; i++)
        {
            (await c.PutAsync("secret/data/db", new { data = new { password = $"later-{i}" } })).Expect(200);
        }

        (await c.PostAsync("sys/storage/snapshot", snapshot.ToJsonString())).Expect(200);
        Assert.Contains(StorageSnapshot.RotatePendingPath, kms.Storage!.Snapshot().Keys);
        await kms.UnsealAsync();

        var status = (await c.GetAsync("sys/key-status")).Expect(200).Data;
        Assert.Equal(snapshotTerm + 1, status["term"]!.GetValue<int>());
        Assert.DoesNotContain(StorageSnapshot.RotatePendingPath, kms.Storage.Snapshot().Keys);
        Assert.Equal("p1", (await c.GetAsync("secret/data/db")).Expect(200).Data["data"]!["password"]!.GetValue<string>());

        // The marker went with the rotation: another seal and unseal keeps the term.
        (await c.PutAsync("sys/seal")).Expect(204);
        await kms.UnsealAsync();
        Assert.Equal(snapshotTerm + 1, (await c.GetAsync("sys/key-status")).Expect(200).Data["term"]!.GetValue<int>());

        // A snapshot taken now does not carry a marker, and one that does is refused as reserved, changing nothing.
        var next = (await c.GetAsync("sys/storage/snapshot")).Expect(200).Body!;
        Assert.DoesNotContain(next["entries"]!.AsArray(), e => e!["key"]!.GetValue<string>() == StorageSnapshot.RotatePendingPath);
        var smuggled = Clone(next);
        smuggled["entries"]!.AsArray().Add(new JsonObject { ["key"] = StorageSnapshot.RotatePendingPath, ["value"] = "AQ==" });
        Assert.Contains("reserved", (await c.PostAsync("sys/storage/snapshot", smuggled.ToJsonString())).Expect(400).Errors[0], StringComparison.Ordinal);
    }

    [Fact]
    public async Task Truncated_or_tampered_snapshots_are_refused_and_change_nothing()
    {
        await using var kms = await TestKms.StartUnsealedAsync();
        var c = kms.Client;
        (await c.PutAsync("secret/data/db", new { data = new { password = "p1" } })).Expect(200);
        var good = (await c.GetAsync("sys/storage/snapshot")).Expect(200).Body!;
        (await c.PutAsync("secret/data/db", new { data = new { password = "p2" } })).Expect(200);
        var before = kms.Storage!.Snapshot();

        var text = good.ToJsonString();
        (await c.PostAsync("sys/storage/snapshot", text[..(text.Length / 2)])).Expect(400);

        var dropped = Clone(good);
        dropped["entries"]!.AsArray().RemoveAt(dropped["entries"]!.AsArray().Count - 1);
        Assert.Contains("sha256", (await c.PostAsync("sys/storage/snapshot", dropped.ToJsonString())).Expect(400).Errors[0], StringComparison.Ordinal);

        var flipped = Clone(good);
        var entry = flipped["entries"]!.AsArray().First(e => e!["key"]!.GetValue<string>().Contains("db", StringComparison.Ordinal))!;
        var bytes = Convert.FromBase64String(entry["value"]!.GetValue<string>());
        bytes[^1] ^= 1;
        entry["value"] = Convert.ToBase64String(bytes);
        Assert.Contains("sha256", (await c.PostAsync("sys/storage/snapshot", flipped.ToJsonString())).Expect(400).Errors[0], StringComparison.Ordinal);

        // A forger who recomputes the hash still lacks the root key: the HMAC fails.
        var reHashed = Clone(good);
        reHashed["hmac"] = new string('0', 64);
        Assert.Contains("hmac", (await c.PostAsync("sys/storage/snapshot", reHashed.ToJsonString())).Expect(400).Errors[0], StringComparison.Ordinal);

        foreach (var (field, value) in new (string, JsonNode?)[] { ("format", "x"), ("entries", 3), ("sha256", "zz"), ("extra", 1) })
        {
            var bad = Clone(good);
            bad[field] = value;
            Assert.Contains($"'{field}'", (await c.PostAsync("sys/storage/snapshot", bad.ToJsonString())).Expect(400).Errors[0], StringComparison.Ordinal);
        }

        Assert.Equal(before.Keys.Order(), kms.Storage.Snapshot().Keys.Order());
        Assert.Equal("p2", (await c.GetAsync("secret/data/db")).Expect(200).Data["data"]!["password"]!.GetValue<string>());

        // The intact one restores into the same KMS (rolling back to p1) with the same shares, and says what it rolled back.
        var warnings = (await c.PostAsync("sys/storage/snapshot", good.ToJsonString())).Expect(200).Body!["warnings"]!.AsArray().Select(w => w!.GetValue<string>()).ToList();
        var warning = Assert.Single(warnings);
        Assert.Contains($"created_at {good["created_at"]!.GetValue<string>()}", warning, StringComparison.Ordinal);
        Assert.Contains("rolled back", warning, StringComparison.Ordinal);
        Assert.Contains("token revocations", warning, StringComparison.Ordinal);
        await kms.UnsealAsync();
        Assert.Equal("p1", (await c.GetAsync("secret/data/db")).Expect(200).Data["data"]!["password"]!.GetValue<string>());
    }

    [Fact]
    public async Task A_foreign_snapshot_whose_hmac_fails_is_refused_at_unseal()
    {
        await using var source = await TestKms.StartUnsealedAsync();
        var snapshot = (await source.Client.GetAsync("sys/storage/snapshot")).Expect(200).Body!;
        await using var target = await TestKms.StartUnsealedAsync();

        // Drop an entry and recompute the keyless hash; the other KMS cannot check the HMAC until the snapshot's key arrives.
        var forged = Clone(snapshot);
        var kept = forged["entries"]!.AsArray().Where(e => !e!["key"]!.GetValue<string>().StartsWith("sys/policy/", StringComparison.Ordinal)).Select(e => e!.DeepClone()).ToList();
        forged["entries"] = new JsonArray([.. kept]);
        forged["sha256"] = Sha(forged["created_at"]!.GetValue<string>(), kept);
        (await target.Client.PostAsync("sys/storage/snapshot-force", forged.ToJsonString())).Expect(200);
        Assert.Contains("does not authenticate", (await target.Client.PutAsync("sys/unseal", new { key = source.Keys[0] })).Expect(400).Errors[0], StringComparison.Ordinal);
        Assert.True((await target.Client.GetAsync("sys/seal-status")).Body!["sealed"]!.GetValue<bool>());
    }

    [Fact]
    public async Task An_edited_created_at_is_refused_and_changes_nothing()
    {
        await using var kms = await TestKms.StartUnsealedAsync();
        var c = kms.Client;
        (await c.PutAsync("secret/data/db", new { data = new { password = "p1" } })).Expect(200);
        var old = (await c.GetAsync("sys/storage/snapshot")).Expect(200).Body!;
        Assert.Equal("morphisms-kms-snapshot/2", old["format"]!.GetValue<string>());
        (await c.PutAsync("secret/data/db", new { data = new { password = "p2" } })).Expect(200);
        var before = kms.Storage!.Snapshot();

        // Dating an old snapshot later, to pass it off as the newest: the keyless hash catches a plain edit, the HMAC
        // one whose hash was recomputed.
        var later = Timestamps(DateTimeOffset.Parse(old["created_at"]!.GetValue<string>(), System.Globalization.CultureInfo.InvariantCulture).AddDays(30));
        var edited = Clone(old);
        edited["created_at"] = later;
        Assert.Contains("'sha256'", (await c.PostAsync("sys/storage/snapshot", edited.ToJsonString())).Expect(400).Errors[0], StringComparison.Ordinal);
        edited["sha256"] = Sha(later, [.. edited["entries"]!.AsArray().Select(e => e!)]);
        Assert.Contains("'hmac'", (await c.PostAsync("sys/storage/snapshot", edited.ToJsonString())).Expect(400).Errors[0], StringComparison.Ordinal);

        // Another spelling of the same instant would be another MACed text: only the KMS's own form is accepted.
        var respelled = Clone(old);
        respelled["created_at"] = "2030-01-01T00:00:00+00:00";
        Assert.Contains("'created_at'", (await c.PostAsync("sys/storage/snapshot", respelled.ToJsonString())).Expect(400).Errors[0], StringComparison.Ordinal);

        // The previous format did not authenticate created_at: refused, asking for a new snapshot.
        var previous = Clone(old);
        previous["format"] = "morphisms-kms-snapshot/1";
        Assert.Contains("take a new snapshot", (await c.PostAsync("sys/storage/snapshot", previous.ToJsonString())).Expect(400).Errors[0], StringComparison.Ordinal);

        Assert.Equal(before.OrderBy(e => e.Key).Select(e => e.Key + Convert.ToHexString(e.Value)), kms.Storage.Snapshot().OrderBy(e => e.Key).Select(e => e.Key + Convert.ToHexString(e.Value)));
        Assert.Equal("p2", (await c.GetAsync("secret/data/db")).Expect(200).Data["data"]!["password"]!.GetValue<string>());

        // From another root key the HMAC waits for the snapshot's shares; the first unseal then refuses the new date.
        await using var target = await TestKms.StartUnsealedAsync();
        (await target.Client.PostAsync("sys/storage/snapshot-force", edited.ToJsonString())).Expect(200);
        Assert.Contains("does not authenticate", (await target.Client.PutAsync("sys/unseal", new { key = kms.Keys[0] })).Expect(400).Errors[0], StringComparison.Ordinal);
        Assert.True((await target.Client.GetAsync("sys/seal-status")).Body!["sealed"]!.GetValue<bool>());
    }

    [Fact]
    public async Task Created_at_is_no_later_than_the_start_of_the_read_so_nothing_written_before_it_is_missing()
    {
        // A long read (a big store): whatever was written while it ran may be missing, so created_at must not date
        // the snapshot after those writes, or the restore warning would tell the operator they survived.
        var time = new FakeTimeProvider(new DateTimeOffset(2026, 11, 22, 12, 0, 0, TimeSpan.Zero));
        var storage = new SlowReadStorage(time);
        await using var core = new KmsCore(storage, new KmsServerOptions { Storage = "inmem", TimeProvider = time, WarningWriter = TextWriter.Null });
        var init = await core.InitializeAsync(1, 1, unseal: false, CancellationToken.None);
        await core.SubmitUnsealKeyAsync(init.Keys[0].ToArray(), CancellationToken.None);
        var state = core.Acquire()!;
        try
        {
            var snapshot = await core.TakeSnapshotAsync(state, CancellationToken.None);
            var createdAt = DateTimeOffset.Parse(snapshot.CreatedAt, System.Globalization.CultureInfo.InvariantCulture);
            Assert.True(createdAt <= storage.ReadStarted, $"created_at {snapshot.CreatedAt} is after the read started ({storage.ReadStarted:O})");
        }
        finally
        {
            state.Release();
        }
    }

    [Fact]
    public async Task Snapshot_needs_sudo()
    {
        await using var kms = await TestKms.StartUnsealedAsync();
        var c = kms.Client;
        (await c.PutAsync("sys/policies/acl/snap", new { policy = """path "sys/storage/snapshot" { capabilities = ["read", "update"] }""" })).Expect(204);
        var token = (await c.PostAsync("auth/token/create", new { policies = new[] { "snap" } })).Expect(200).Auth["client_token"]!.GetValue<string>();
        (await c.GetAsync("sys/storage/snapshot", token)).Expect(403);
        (await c.PostAsync("sys/storage/snapshot", new { }, token)).Expect(403);
    }

    [Theory]
    [InlineData("nul\u0000key", "U+0000")]
    [InlineData(null, "2048")]
    public async Task Entries_whose_keys_storage_cannot_hold_are_refused_naming_the_entry_and_change_nothing(string? key, string expected)
    {
        await using var source = await TestKms.StartUnsealedAsync();
        var snapshot = (await source.Client.GetAsync("sys/storage/snapshot")).Expect(200).Body!;
        await using var target = await TestKms.StartUnsealedAsync();
        var before = target.Storage!.Snapshot();

        // PostgreSQL's text cannot hold U+0000 and its primary-key index refuses a key over 2704 bytes: the snapshot's
        // hash is recomputed, so only the key itself is wrong (from another root key, its HMAC waits for the unseal).
        key ??= "logical/" + string.Concat(Enumerable.Range(0, 2049 - "logical/".Length).Select(i => (char)('a' + (i * 7 % 26))));
        var entries = snapshot["entries"]!.AsArray().Select(e => e!.DeepClone()).ToList();
        entries.Add(new JsonObject { ["key"] = key, ["value"] = Convert.ToBase64String([1, 2, 3]) });
        var forged = Clone(snapshot);
        forged["entries"] = new JsonArray([.. entries]);
        forged["sha256"] = Sha(forged["created_at"]!.GetValue<string>(), entries);
        var error = (await target.Client.PostAsync("sys/storage/snapshot", forged.ToJsonString())).Expect(400).Errors[0];
        Assert.Contains($"'entries[{entries.Count - 1}].key'", error, StringComparison.Ordinal);
        Assert.Contains(expected, error, StringComparison.Ordinal);

        // Nothing happened: still unsealed, the same store.
        (await target.Client.GetAsync("sys/key-status")).Expect(200);
        Assert.Equal(before.OrderBy(e => e.Key).Select(e => e.Key + Convert.ToHexString(e.Value)), target.Storage.Snapshot().OrderBy(e => e.Key).Select(e => e.Key + Convert.ToHexString(e.Value)));
    }

    [Theory]
    [InlineData(typeof(InvalidOperationException))]
    [InlineData(typeof(IOException))]
    public async Task A_replacement_that_fails_is_the_restores_answer_and_the_old_shares_still_unseal(Type failure)
    {
        var storage = new GatedStorage();
        await using var kms = await TestKms.StartUnsealedAsync(physical: storage);
        var c = kms.Client;
        (await c.PutAsync("secret/data/db", new { data = new { password = "p1" } })).Expect(200);
        var snapshot = (await c.GetAsync("sys/storage/snapshot")).Expect(200).Body!;
        (await c.PutAsync("secret/data/db", new { data = new { password = "p2" } })).Expect(200);

        // A disk that fills, a lost HA lock, or a bug: the replacement's transaction throws.
        storage.FailNextTransaction((Exception)Activator.CreateInstance(failure, "disk on fire")!);
        var answer = await c.PostAsync("sys/storage/snapshot", snapshot.ToJsonString());
        Assert.NotEqual(200, answer.Status);
        var error = Assert.Single(answer.Errors);
        Assert.Contains("restore failed", error, StringComparison.Ordinal);
        Assert.Contains("disk on fire", error, StringComparison.Ordinal);
        Assert.Contains("unchanged", error, StringComparison.Ordinal);

        // Sealed, with the old store, which its own shares open (not a 500 from a faulted seal).
        await kms.Server.SealClosing.WaitAsync(TimeSpan.FromSeconds(30));
        (await c.GetAsync("secret/data/db")).Expect(503);
        await kms.UnsealAsync();
        Assert.Equal("p2", (await c.GetAsync("secret/data/db")).Expect(200).Data["data"]!["password"]!.GetValue<string>());
    }

    [Fact]
    public async Task A_write_outliving_the_restores_drain_never_lands_in_the_restored_store()
    {
        await using var source = await TestKms.StartUnsealedAsync();
        (await source.Client.PutAsync("secret/data/db", new { data = new { password = "restored" } })).Expect(200);
        var snapshot = (await source.Client.GetAsync("sys/storage/snapshot")).Expect(200).Body!;

        var storage = new GatedStorage();
        await using var target = await TestKms.StartUnsealedAsync(physical: storage);
        var state = target.Server.Core.Acquire()!;
        state.Release();

        // A KV write encrypted under the target's keyring stops on its way to storage, holding its lease past the
        // seal's drain.
        storage.HoldNextWrite("logical/");
        var write = target.Client.PutAsync("secret/data/straggler", new { data = new { v = "late" } });
        await storage.Reached.WaitAsync(TimeSpan.FromSeconds(30));
        var restore = target.Client.PostAsync("sys/storage/snapshot-force", snapshot.ToJsonString());
        for (var i = 0; i < 600 && !state.Barrier.Wiped; i++)
        {
            target.Time.Advance(target.Server.Core.Options.SealDrainTimeout);
            await Task.Delay(50);
        }

        Assert.True(state.Barrier.Wiped);
        await Task.Delay(200);
        storage.Release();
        await write.WaitAsync(TimeSpan.FromSeconds(30));
        (await restore.WaitAsync(TimeSpan.FromSeconds(30))).Expect(200);
        await target.Server.SealClosing.WaitAsync(TimeSpan.FromSeconds(30));

        // Exactly the snapshot's entries: the late write is not there, so the snapshot's HMAC check at unseal passes.
        Assert.DoesNotContain(storage.HeldKeys, k => storage.Inner.Snapshot().ContainsKey(k));
        var t = target.Client;
        (await t.PutAsync("sys/unseal", new { key = source.Keys[0] })).Expect(200);
        t.Token = source.RootToken;
        Assert.Equal("restored", (await t.GetAsync("secret/data/db")).Expect(200).Data["data"]!["password"]!.GetValue<string>());
        (await t.GetAsync("secret/data/straggler")).Expect(404);
    }

    private static JsonObject Clone(JsonObject o) => (JsonObject)o.DeepClone();

    private static string Stable(VaultResult r)
    {
        var body = (JsonObject)r.Body!.DeepClone();
        body.Remove("request_id");

        // sys/key-status: a store opened from storage assumes its persisted encryption count plus a safety margin.
        (body["data"] as JsonObject)?.Remove("encryptions");
        return body.ToJsonString();
    }

    private static string Timestamps(DateTimeOffset t) =>
        t.UtcDateTime.ToString("yyyy-MM-dd'T'HH:mm:ss.fffffff'Z'", System.Globalization.CultureInfo.InvariantCulture);

    private static string Sha(string createdAt, List<JsonNode> entries)
    {
        using var stream = new MemoryStream();
        stream.Write("morphisms-kms-snapshot/2"u8);
        var at = System.Text.Encoding.UTF8.GetBytes(createdAt);
        stream.Write(BigEndian(at.Length));
        stream.Write(at);
        var sorted = entries.Select(e => (Key: e["key"]!.GetValue<string>(), Value: Convert.FromBase64String(e["value"]!.GetValue<string>()))).OrderBy(e => e.Key, StringComparer.Ordinal);
        foreach (var (key, value) in sorted)
        {
            var k = System.Text.Encoding.UTF8.GetBytes(key);
            stream.Write(BigEndian(k.Length));
            stream.Write(k);
            stream.Write(BigEndian(value.Length));
            stream.Write(value);
        }

        return Convert.ToHexStringLower(System.Security.Cryptography.SHA256.HashData(stream.ToArray()));
    }

    private static byte[] BigEndian(int n)
    {
        var b = new byte[4];
        System.Buffers.Binary.BinaryPrimitives.WriteInt32BigEndian(b, n);
        return b;
    }

    /// <summary>In-memory storage that can hold its next write under a prefix until released, or fail its next transaction.</summary>
    private sealed class GatedStorage : ForwardingStorage
    {
        private readonly TaskCompletionSource _reached = new(TaskCreationOptions.RunContinuationsAsynchronously);
        private readonly TaskCompletionSource _release = new(TaskCreationOptions.RunContinuationsAsynchronously);
        private string? _held;
        private Exception? _failure;

        public Task Reached => _reached.Task;

        /// <summary>The keys of the held write.</summary>
        public IReadOnlyList<string> HeldKeys { get; private set; } = [];

        public void HoldNextWrite(string prefix) => _held = prefix;

        public void FailNextTransaction(Exception failure) => _failure = failure;

        public void Release() => _release.TrySetResult();

        public override Task PutAsync(string key, ReadOnlyMemory<byte> value, CancellationToken cancellationToken = default) =>
            TransactAsync([StorageOperation.Put(key, value)], cancellationToken);

        public override Task DeleteAsync(string key, CancellationToken cancellationToken = default) =>
            TransactAsync([StorageOperation.Delete(key)], cancellationToken);

        public override async Task TransactAsync(IReadOnlyList<StorageOperation> operations, CancellationToken cancellationToken = default)
        {
            if (Interlocked.Exchange(ref _failure, null) is { } failure)
            {
                throw failure;
            }

            if (_held is { } prefix && operations.Any(o => o.Key.StartsWith(prefix, StringComparison.Ordinal)) && Interlocked.Exchange(ref _held, null) is not null)
            {
                HeldKeys = [.. operations.Select(o => o.Key)];
                _reached.TrySetResult();
                await _release.Task.WaitAsync(TimeSpan.FromSeconds(30), cancellationToken);
            }

            await Inner.TransactAsync(operations, cancellationToken);
        }

        public override Task<IReadOnlyList<KeyValuePair<string, byte[]>>> ReadAllAsync(CancellationToken cancellationToken = default) => ((IPhysicalStorage)Inner).ReadAllAsync(cancellationToken);
    }

    /// <summary>In-memory storage whose full read takes a minute of <paramref name="time"/>.</summary>
    private sealed class SlowReadStorage(FakeTimeProvider time) : ForwardingStorage
    {
        /// <summary>When the last full read began.</summary>
        public DateTimeOffset ReadStarted { get; private set; }

        public override async Task<IReadOnlyList<KeyValuePair<string, byte[]>>> ReadAllAsync(CancellationToken cancellationToken = default)
        {
            ReadStarted = time.GetUtcNow();
            var entries = await ((IPhysicalStorage)Inner).ReadAllAsync(cancellationToken);
            time.Advance(TimeSpan.FromMinutes(1));
            return entries;
        }
    }
}
