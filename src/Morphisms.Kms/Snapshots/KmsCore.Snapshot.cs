using System.Security.Cryptography;
using System.Text.Json;
using Morphisms.Kms.Barrier;
using Morphisms.Kms.Http;
using Morphisms.Kms.Seal;
using Morphisms.Kms.Snapshots;
using Morphisms.Kms.Storage;

namespace Morphisms.Kms;

/// <summary>Backup and restore of the whole store (<c>sys/storage/snapshot</c>).</summary>
internal sealed partial class KmsCore
{
    /// <summary>
    /// A consistent snapshot of every physical entry, authenticated with the root key's snapshot subkey, dated when
    /// the read began.
    /// </summary>
    public async Task<StorageSnapshot> TakeSnapshotAsync(UnsealedState state, CancellationToken ct)
    {
        // Before the read: a write committed while a long read runs may be missing from it, and a restore tells the
        // operator to redo what happened after created_at, so that write must not be dated before it. What the read
        // does include from after this instant is only redone twice.
        var createdAt = Time.GetUtcNow();
        var entries = await _physical.ReadAllAsync(ct).ConfigureAwait(false);
        var key = state.DeriveRootSubkey(RootSubkeys.Snapshot);
        try
        {
            return StorageSnapshot.Create(entries, createdAt, key);
        }
        finally
        {
            CryptographicOperations.ZeroMemory(key);
        }
    }

    /// <summary>
    /// Seals and replaces the whole store with <paramref name="snapshot"/> (already parsed and checked), returning
    /// once the replacement is written, so that the restore's reply tells its outcome. The write happens after the
    /// other in-flight requests drain and the barrier's keys are wiped — so none of them can write old-keyring
    /// ciphertext into the restored store — in one transaction; the next unseal (which waits for it) needs the
    /// snapshot's shares. A snapshot this KMS's root key did not make (another cluster) leaves a marker checked at that
    /// unseal. Returns whether the snapshot's HMAC (and so its <c>created_at</c>) verified now, rather than at that
    /// unseal. The caller holds a lease on <paramref name="state"/>, the one lease the drain does not wait for.
    /// </summary>
    /// <exception cref="KmsException">
    /// 400 for an altered snapshot of this KMS, or for another KMS's unless <paramref name="allowForeign"/>; 503 when already sealed; 500 naming the failure when the replacement
    /// failed, the KMS then sealed over the previous store, which its own shares still open.
    /// </exception>
    public async Task<bool> RestoreAsync(UnsealedState state, StorageSnapshot snapshot, bool allowForeign, CancellationToken ct)
    {
        var key = state.DeriveRootSubkey(RootSubkeys.Snapshot);
        var verified = snapshot.Verifies(key);
        CryptographicOperations.ZeroMemory(key);

        // A snapshot whose keyring this root key opens comes from this KMS, so its HMAC must verify now; only a
        // snapshot of another root key has its HMAC checked later, by the first unseal with its own shares.
        var keyring = snapshot.Entries.First(e => e.Key == BarrierStorage.KeyringPath).Value;
        if (!verified && state.RootKeyOpens(BarrierStorage.KeyringPath, keyring))
        {
            throw KmsException.BadRequest("invalid snapshot: 'hmac': does not verify under this KMS's root key (the snapshot was altered)");
        }

        // Another KMS's snapshot brings its own root key, shares, root CA and secrets: whoever made it unseals this KMS
        // afterwards and its attestation then vouches for their root CA. A sudo token alone must not do that by accident
        // or theft through the everyday path; as Vault's snapshot-force, only the separate path does it.
        if (!verified && !allowForeign)
        {
            throw KmsException.BadRequest("invalid snapshot: it was made by another KMS (its keyring does not open under this KMS's root key), and restoring it replaces this KMS's root key, shares and root CA; if that is intended, POST it to sys/storage/snapshot-force");
        }

        Task replacement;
        await _transition.WaitAsync(ct).ConfigureAwait(false);
        try
        {
            var active = Interlocked.Exchange(ref _active, null);
            if (active is null)
            {
                throw KmsException.Sealed();
            }

            Interlocked.Exchange(ref _rekey, null)?.Wipe();
            _progress.Reset();

            // The replacement cannot wait for the restore's own lease (it ends with the reply, which reports the
            // outcome); the rest of the wipe can, and does, so the reply is still audited.
            replacement = ReplaceStoreAsync(active, snapshot, verified);
            _closing = CloseAfterAsync(replacement, active);

            // HA: the restored store needs its own shares; the lock is handed over once the replacement is written.
            if (Interlocked.Exchange(ref _heldRootKey, null) is { } held)
            {
                _closing = ForgetAfterAsync(_closing, held);
                Election?.Wake();
            }
        }
        finally
        {
            _transition.Release();
        }

        await replacement.ConfigureAwait(false);
        return verified;
    }

    /// <summary>
    /// Waits for the requests other than the restore, wipes the barrier's keyring (a request still running then fails
    /// as sealed at its next key use or write instead of storing old-keyring ciphertext), waits for the writes already
    /// past encryption, and writes the snapshot in one transaction.
    /// </summary>
    /// <exception cref="KmsException">500 naming whatever failed; the transaction did not apply.</exception>
    private async Task ReplaceStoreAsync(UnsealedState previous, StorageSnapshot snapshot, bool verified)
    {
        try
        {
            await previous.DrainOthersAsync().ConfigureAwait(false);
            previous.Barrier.Wipe();

            // A write the drain gave up on may have encrypted before the wipe and still be on its way to storage:
            // after the transaction it would leave old-keyring ciphertext in the restored store (and break the
            // pending HMAC check, so the snapshot's shares could not unseal). Once wiped, writes fail fast.
            await previous.Barrier.WritesFinishedAsync().ConfigureAwait(false);
            var incoming = snapshot.Entries.Select(e => e.Key).ToHashSet(StringComparer.Ordinal);
            var ops = (await _physical.ReadAllAsync().ConfigureAwait(false))
                .Where(e => !incoming.Contains(e.Key))
                .Select(e => StorageOperation.Delete(e.Key))
                .Concat(snapshot.Entries.Select(e => StorageOperation.Put(e.Key, e.Value)))
                .ToList();
            ops.Add(verified ? StorageOperation.Delete(StorageSnapshot.PendingHmacPath) : StorageOperation.Put(StorageSnapshot.PendingHmacPath, snapshot.PendingMarker()));
            ops.Add(StorageOperation.Put(StorageSnapshot.RotatePendingPath, new byte[] { 1 }));
            await _physical.TransactAsync(ops).ConfigureAwait(false);

            // The snapshot's seal config (Parse checked it), as LoadAsync would read it back: no read left to fail
            // once the store is replaced.
            Volatile.Write(ref _sealConfig, JsonSerializer.Deserialize<SealConfig>(snapshot.Entries.First(e => e.Key == SealConfig.StoragePath).Value));
        }
        catch (Exception e)
        {
            // Whatever failed — the storage refusing the transaction, a full disk, a lost HA lock, a bug — the old
            // store is intact and its own shares still unseal it. The failure is the restore's answer (and logged);
            // it never faults the wipe that follows, which every unseal awaits.
            var message = $"snapshot restore failed, the previous store is unchanged; the KMS is sealed: unseal it with its current shares ({e.GetType().Name}: {e.Message})";
            await (Options.WarningWriter ?? Console.Error).WriteLineAsync("ERROR: " + message).ConfigureAwait(false);
            try
            {
                // A commit whose acknowledgement was lost did apply: the store as it is decides the shares' layout.
                await LoadAsync(CancellationToken.None).ConfigureAwait(false);
            }
            catch (Exception reload) when (reload is IOException or System.Data.Common.DbException)
            {
                // The cached config stays, as before the restore.
            }

            throw new KmsException(500, message);
        }
    }

    /// <summary>The wipe after a restore: the previous state closes once the replacement is over, never faulting.</summary>
    private static async Task CloseAfterAsync(Task replacement, UnsealedState previous)
    {
        try
        {
            await replacement.ConfigureAwait(false);
        }
        catch (Exception)
        {
            // The restore's reply carried it; unseals await this task, so nothing may fault it.
        }

        await previous.CloseAsync().ConfigureAwait(false);
    }

    /// <summary>
    /// After a restore of a snapshot from another root key: the root key just recovered must authenticate the
    /// restored store before anything is served; the marker goes once it does.
    /// </summary>
    private async Task CheckRestoredSnapshotAsync(byte[] rootKey, CancellationToken ct)
    {
        var marker = await _physical.GetAsync(StorageSnapshot.PendingHmacPath, ct).ConfigureAwait(false);
        if (marker is null)
        {
            return;
        }

        var key = RootSubkeys.Derive(rootKey, RootSubkeys.Snapshot);
        try
        {
            if (!StorageSnapshot.VerifyPending(await _physical.ReadAllAsync(ct).ConfigureAwait(false), marker, key))
            {
                throw KmsException.BadRequest("unseal refused: the restored snapshot does not authenticate under its own root key (it was altered); restore an intact snapshot into fresh storage");
            }
        }
        finally
        {
            CryptographicOperations.ZeroMemory(key);
        }

        await _physical.DeleteAsync(StorageSnapshot.PendingHmacPath, ct).ConfigureAwait(false);
    }
}
