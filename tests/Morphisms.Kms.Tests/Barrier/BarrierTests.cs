using System.Text;
using Morphisms.Kms.Barrier;
using Morphisms.Kms.Storage;

namespace Morphisms.Kms.Tests.Barrier;

public class BarrierTests
{
    private static readonly DateTimeOffset Now = new(2026, 11, 22, 0, 0, 0, TimeSpan.Zero);

    [Fact]
    public async Task Values_are_encrypted_on_disk_and_decrypt_back()
    {
        var physical = new InMemoryStorage();
        var barrier = new BarrierStorage(physical, Keyring.Create(Now));
        await barrier.PutAsync("logical/x/secret", Encoding.UTF8.GetBytes("hunter2-plaintext"));

        var raw = physical.Snapshot()["logical/x/secret"];
        Assert.DoesNotContain("hunter2", Encoding.UTF8.GetString(raw), StringComparison.Ordinal);
        Assert.Equal(1u, AesGcmEnvelope.ReadTerm(raw));
        Assert.Equal(AesGcmEnvelope.Version, raw[4]);
        Assert.Equal("hunter2-plaintext", Encoding.UTF8.GetString((await barrier.GetAsync("logical/x/secret"))!));
    }

    [Fact]
    public async Task A_flipped_bit_fails_authentication()
    {
        var physical = new InMemoryStorage();
        var barrier = new BarrierStorage(physical, Keyring.Create(Now));
        await barrier.PutAsync("k", [1, 2, 3]);
        for (var i = 5; i < physical.Snapshot()["k"].Length; i += 7)
        {
            var raw = physical.Snapshot()["k"];
            raw[i] ^= 0x01;
            await physical.PutAsync("tampered", raw);
            var copy = new BarrierStorage(physical, barrier.Keyring);
            await physical.PutAsync("k2", raw);
            await Assert.ThrowsAsync<BarrierException>(() => copy.GetAsync("k2"));
        }
    }

    [Fact]
    public async Task A_ciphertext_moved_to_another_key_is_refused()
    {
        var physical = new InMemoryStorage();
        var barrier = new BarrierStorage(physical, Keyring.Create(Now));
        await barrier.PutAsync("sys/policy/admin", Encoding.UTF8.GetBytes("admin policy"));
        await physical.PutAsync("sys/policy/guest", physical.Snapshot()["sys/policy/admin"]);

        var e = await Assert.ThrowsAsync<BarrierException>(() => barrier.GetAsync("sys/policy/guest"));
        Assert.Contains("sys/policy/guest", e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Truncated_or_unknown_version_ciphertexts_are_refused()
    {
        var physical = new InMemoryStorage();
        var barrier = new BarrierStorage(physical, Keyring.Create(Now));
        await physical.PutAsync("short", new byte[10]);
        await Assert.ThrowsAsync<BarrierException>(() => barrier.GetAsync("short"));

        await barrier.PutAsync("v", [9]);
        var raw = physical.Snapshot()["v"];
        raw[4] = 1;
        await physical.PutAsync("v", raw);
        await Assert.ThrowsAsync<BarrierException>(() => barrier.GetAsync("v"));
    }

    [Fact]
    public async Task Rotation_adds_a_term_and_old_ciphertexts_still_decrypt()
    {
        var physical = new InMemoryStorage();
        var rootKey = new byte[32];
        var barrier = new BarrierStorage(physical, Keyring.Create(Now));
        await barrier.PutAsync("old", [1]);
        await barrier.RotateAsync(rootKey, Now.AddDays(1), CancellationToken.None);
        await barrier.PutAsync("new", [2]);

        Assert.Equal(1u, AesGcmEnvelope.ReadTerm(physical.Snapshot()["old"]));
        Assert.Equal(2u, AesGcmEnvelope.ReadTerm(physical.Snapshot()["new"]));
        Assert.Equal([1], (await barrier.GetAsync("old"))!);
        Assert.Equal([2], (await barrier.GetAsync("new"))!);

        // The rotated keyring was stored first, under the root key, and reads back with both terms.
        var stored = BarrierStorage.UnwrapKeyring(rootKey, physical.Snapshot()[BarrierStorage.KeyringPath]);
        Assert.Equal(2u, stored.ActiveTerm);
        Assert.Equal(2, stored.Terms.Count());
    }

    [Fact]
    public void The_keyring_does_not_open_under_another_root_key()
    {
        var wrapped = BarrierStorage.WrapKeyring(new byte[32], Keyring.Create(Now));
        var other = new byte[32];
        other[0] = 1;
        Assert.Throws<BarrierException>(() => BarrierStorage.UnwrapKeyring(other, wrapped));
    }

    [Fact]
    public async Task A_prefixed_view_cannot_reach_outside_its_prefix()
    {
        var physical = new InMemoryStorage();
        var barrier = new BarrierStorage(physical, Keyring.Create(Now));
        var view = new PrefixedStorage(barrier, "logical/abc/");
        await view.TransactAsync([("metadata/a", [1]), ("metadata/b/c", [2])]);

        Assert.Equal(["logical/abc/metadata/a", "logical/abc/metadata/b/c"], physical.Snapshot().Keys.Order(StringComparer.Ordinal));
        Assert.Equal(["a", "b/"], await view.ListAsync("metadata/"));
    }

    [Fact]
    public async Task Once_wiped_deletes_are_refused_as_sealed_like_puts_and_nothing_is_deleted()
    {
        var physical = new InMemoryStorage();
        var barrier = new BarrierStorage(physical, Keyring.Create(Now));
        await barrier.PutAsync("a", [1]);
        await barrier.PutAsync("b", [2]);
        barrier.Wipe();

        // No key use stops a delete; after a restore it would delete the restored store's entry.
        foreach (var delete in new Func<Task>[] { () => barrier.DeleteAsync("a"), () => barrier.TransactAsync([("b", null)]), () => barrier.PutAsync("c", [3]) })
        {
            var refused = await Assert.ThrowsAsync<Morphisms.Kms.Http.KmsException>(delete);
            Assert.Equal(503, refused.StatusCode);
        }

        Assert.Equal(["a", "b"], physical.Snapshot().Keys.Order(StringComparer.Ordinal));
        Assert.True(barrier.WritesFinishedAsync().IsCompleted);
    }

    [Fact]
    public async Task A_write_past_encryption_when_the_barrier_is_wiped_is_waited_for()
    {
        var physical = new HeldPutStorage();
        var barrier = new BarrierStorage(physical, Keyring.Create(Now));
        var put = barrier.PutAsync("late", [1]);
        await physical.Reached.WaitAsync(TimeSpan.FromSeconds(30));
        barrier.Wipe();

        var finished = barrier.WritesFinishedAsync();
        Assert.False(finished.IsCompleted);
        physical.Release();
        await put.WaitAsync(TimeSpan.FromSeconds(30));
        await finished.WaitAsync(TimeSpan.FromSeconds(30));
    }

    /// <summary>In-memory storage whose first put waits until released.</summary>
    private sealed class HeldPutStorage : ForwardingStorage
    {
        private readonly TaskCompletionSource _reached = new(TaskCreationOptions.RunContinuationsAsynchronously);
        private readonly TaskCompletionSource _release = new(TaskCreationOptions.RunContinuationsAsynchronously);

        public Task Reached => _reached.Task;

        public void Release() => _release.TrySetResult();

        public override async Task PutAsync(string key, ReadOnlyMemory<byte> value, CancellationToken cancellationToken = default)
        {
            _reached.TrySetResult();
            await _release.Task.WaitAsync(TimeSpan.FromSeconds(30), cancellationToken);
            await Inner.PutAsync(key, value, cancellationToken);
        }
    }
}
