using System.Text;
using Microsoft.Extensions.Time.Testing;
using Morphisms.Kms.Barrier;
using Morphisms.Kms.Http;
using Morphisms.Kms.Storage;

namespace Morphisms.Kms.Tests.Seal;

/// <summary>
/// A seal waits only <see cref="KmsServerOptions.SealDrainTimeout"/> for in-flight requests before it zeroes the
/// keys. Requests still running then must fail as sealed, never encrypt, wrap or MAC under the zeroed keys.
/// </summary>
public class SealWipeTests
{
    private const string DataKey = "wipe-test/value";

    [Fact]
    public async Task Rotations_outliving_the_seal_drain_never_store_a_keyring_under_wiped_keys()
    {
        var storage = new HoldingStorage();
        var (core, time, key) = await StartAsync(storage);
        await using var lifetime = core;
        var state = core.Acquire()!;
        await state.Barrier.PutAsync(DataKey, Encoding.UTF8.GetBytes("kept"));

        // The first rotation stops in its keyring write, the second queues behind it; both hold their leases.
        storage.Hold(BarrierStorage.KeyringPath);
        var first = state.RotateAsync(time.GetUtcNow(), CancellationToken.None);
        await storage.Reached.WaitAsync(TimeSpan.FromSeconds(30));
        var second = state.RotateAsync(time.GetUtcNow(), CancellationToken.None);

        core.BeginSeal();
        time.Advance(core.Options.SealDrainTimeout);
        await core.Closing.WaitAsync(TimeSpan.FromSeconds(30));
        Assert.All(state.Barrier.Keyring.Terms, t => Assert.All(t.Key, b => Assert.Equal(0, b)));

        storage.Release();

        // The first had wrapped its keyring before the wipe: stored intact, and its new term is wiped from memory.
        var rotated = await first.WaitAsync(TimeSpan.FromSeconds(30));
        Assert.All(rotated.Terms, t => Assert.All(t.Key, b => Assert.Equal(0, b)));

        // The second began after the wipe: sealed, nothing written.
        var refused = await Assert.ThrowsAsync<KmsException>(() => second.WaitAsync(TimeSpan.FromSeconds(30)));
        Assert.Equal(503, refused.StatusCode);
        Assert.Equal(["Vault is sealed"], refused.Errors);
        Assert.Equal(1, storage.KeyringWrites);
        state.Release();

        // The real keys still open the store, with the first rotation's term, and the data reads back.
        await core.SubmitUnsealKeyAsync(key.ToArray(), CancellationToken.None);
        var reopened = core.Acquire()!;
        try
        {
            Assert.Equal(2u, reopened.Barrier.Keyring.ActiveTerm);
            Assert.Equal("kept", Encoding.UTF8.GetString((await reopened.Barrier.GetAsync(DataKey))!));
        }
        finally
        {
            reopened.Release();
        }
    }

    [Fact]
    public async Task A_snapshot_read_outliving_the_seal_drain_fails_as_sealed_instead_of_a_zero_key_hmac()
    {
        var storage = new HoldingStorage();
        var (core, time, key) = await StartAsync(storage);
        await using var lifetime = core;
        var state = core.Acquire()!;

        storage.HoldReadAll();
        var snapshot = core.TakeSnapshotAsync(state, CancellationToken.None);
        await storage.Reached.WaitAsync(TimeSpan.FromSeconds(30));
        core.BeginSeal();
        time.Advance(core.Options.SealDrainTimeout);
        await core.Closing.WaitAsync(TimeSpan.FromSeconds(30));
        storage.Release();

        var refused = await Assert.ThrowsAsync<KmsException>(() => snapshot.WaitAsync(TimeSpan.FromSeconds(30)));
        Assert.Equal(503, refused.StatusCode);
        state.Release();
        await core.SubmitUnsealKeyAsync(key.ToArray(), CancellationToken.None);
        Assert.False(core.Sealed);
    }

    [Fact]
    public async Task A_failing_audit_device_still_wipes_the_keys_and_later_unseals_work()
    {
        var dir = Directory.CreateTempSubdirectory("kms-seal-wipe-").FullName;
        try
        {
            var (core, _, key) = await StartAsync(new HoldingStorage(), Path.Combine(dir, "audit.log"));
            await using var lifetime = core;
            var state = core.Acquire()!;
            state.Release();

            // The device fails under the seal's own notice (as a full disk would).
            state.Audit!.Dispose();
            await core.SealAsync();
            Assert.All(state.Barrier.Keyring.Terms, t => Assert.All(t.Key, b => Assert.Equal(0, b)));

            await core.SubmitUnsealKeyAsync(key.ToArray(), CancellationToken.None);
            Assert.False(core.Sealed);
        }
        finally
        {
            Directory.Delete(dir, recursive: true);
        }
    }

    [Fact]
    public async Task A_read_outliving_the_seal_drain_with_an_audit_log_fails_as_sealed_not_as_an_internal_error()
    {
        var dir = Directory.CreateTempSubdirectory("kms-seal-wipe-").FullName;
        try
        {
            var storage = new HoldingStorage();
            await using var kms = await TestKms.StartUnsealedAsync(o => o with { AuditLogPath = Path.Combine(dir, "audit.log"), SealDrainTimeout = TimeSpan.FromSeconds(5) }, physical: storage);
            (await kms.Client.PutAsync("secret/data/wipe-audit", new { data = new { v = "1" } })).Expect(200);

            // The read stops in storage holding its lease; the seal gives up waiting for it and wipes the keys (and
            // closes the audit log) before the read decrypts and audits its answer.
            storage.HoldGet("wipe-audit");
            var read = kms.Client.GetAsync("secret/data/wipe-audit");
            await storage.Reached.WaitAsync(TimeSpan.FromSeconds(30));
            (await kms.Client.PutAsync("sys/seal")).Expect(204);
            kms.Time.Advance(TimeSpan.FromSeconds(5));
            await kms.Server.SealClosing.WaitAsync(TimeSpan.FromSeconds(30));
            storage.Release();

            var refused = (await read.WaitAsync(TimeSpan.FromSeconds(30))).Expect(503);
            Assert.Equal(["Vault is sealed"], refused.Errors);
        }
        finally
        {
            Directory.Delete(dir, recursive: true);
        }
    }

    private static async Task<(KmsCore Core, FakeTimeProvider Time, byte[] Key)> StartAsync(IPhysicalStorage storage, string? auditLogPath = null)
    {
        var time = new FakeTimeProvider(new DateTimeOffset(2026, 11, 22, 12, 0, 0, TimeSpan.Zero));
        var options = new KmsServerOptions { Storage = "inmem", TimeProvider = time, WarningWriter = TextWriter.Null, AuditLogPath = auditLogPath };
        var core = new KmsCore(storage, options);
        var init = await core.InitializeAsync(1, 1, unseal: false, CancellationToken.None);
        await core.SubmitUnsealKeyAsync(init.Keys[0].ToArray(), CancellationToken.None);
        Assert.False(core.Sealed);
        return (core, time, init.Keys[0]);
    }

    /// <summary>In-memory storage that can hold the next put of one key, the next read of one, or the next full read, until released.</summary>
    private sealed class HoldingStorage : ForwardingStorage
    {
        private readonly TaskCompletionSource _reached = new(TaskCreationOptions.RunContinuationsAsynchronously);
        private readonly TaskCompletionSource _release = new(TaskCreationOptions.RunContinuationsAsynchronously);
        private string? _heldPut;
        private string? _heldGet;
        private bool _holdReadAll;
        private int _keyringWrites;

        public Task Reached => _reached.Task;

        /// <summary>Puts of the keyring (rotations; init writes it in a transaction).</summary>
        public int KeyringWrites => Volatile.Read(ref _keyringWrites);

        public void Hold(string key) => _heldPut = key;

        public void HoldReadAll() => _holdReadAll = true;

        /// <summary>Holds the next read of a key containing <paramref name="part"/>.</summary>
        public void HoldGet(string part) => _heldGet = part;

        public void Release() => _release.TrySetResult();

        public override async Task<byte[]?> GetAsync(string key, CancellationToken cancellationToken = default)
        {
            if (_heldGet is { } part && key.Contains(part, StringComparison.Ordinal) && Interlocked.Exchange(ref _heldGet, null) is not null)
            {
                _reached.TrySetResult();
                await _release.Task.WaitAsync(TimeSpan.FromSeconds(30), cancellationToken);
            }

            return await Inner.GetAsync(key, cancellationToken);
        }

        public override async Task PutAsync(string key, ReadOnlyMemory<byte> value, CancellationToken cancellationToken = default)
        {
            if (key == BarrierStorage.KeyringPath)
            {
                Interlocked.Increment(ref _keyringWrites);
            }

            if (key == _heldPut && Interlocked.Exchange(ref _heldPut, null) is not null)
            {
                _reached.TrySetResult();
                await _release.Task.WaitAsync(TimeSpan.FromSeconds(30), cancellationToken);
            }

            await Inner.PutAsync(key, value, cancellationToken);
        }

        public override async Task<IReadOnlyList<KeyValuePair<string, byte[]>>> ReadAllAsync(CancellationToken cancellationToken = default)
        {
            if (_holdReadAll)
            {
                _holdReadAll = false;
                _reached.TrySetResult();
                await _release.Task.WaitAsync(TimeSpan.FromSeconds(30), cancellationToken);
            }

            return await ((IPhysicalStorage)Inner).ReadAllAsync(cancellationToken);
        }
    }
}
