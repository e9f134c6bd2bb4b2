using System.Security.Cryptography;
using Morphisms.Kms.Barrier;
using Morphisms.Kms.Http;
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
    /// Seals and replaces the whole store with <paramref name="snapshot"/> (already parsed and checked). The write
    /// happens after in-flight requests drain — so none of them can write old-keyring ciphertext into the restored
    /// store — in one transaction; the next unseal (which waits for it) needs the snapshot's shares. A snapshot this
    /// KMS's root key did not make (another cluster) leaves a marker checked at that unseal. Returns whether the
    /// snapshot's HMAC (and so its <c>created_at</c>) verified now, rather than at that unseal.
    /// </summary>
    public async Task<bool> RestoreAsync(UnsealedState state, StorageSnapshot snapshot, CancellationToken ct)
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
            _closing = ReplaceStoreAsync(active, snapshot, verified);

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

        return verified;
    }

    private async Task ReplaceStoreAsync(UnsealedState previous, StorageSnapshot snapshot, bool verified)
    {
        await previous.CloseAsync().ConfigureAwait(false);
        try
        {
            var incoming = snapshot.Entries.Select(e => e.Key).ToHashSet(StringComparer.Ordinal);
            var ops = (await _physical.ReadAllAsync().ConfigureAwait(false))
                .Where(e => !incoming.Contains(e.Key))
                .Select(e => StorageOperation.Delete(e.Key))
                .Concat(snapshot.Entries.Select(e => StorageOperation.Put(e.Key, e.Value)))
                .ToList();
            ops.Add(verified ? StorageOperation.Delete(StorageSnapshot.PendingHmacPath) : StorageOperation.Put(StorageSnapshot.PendingHmacPath, snapshot.PendingMarker()));
            await _physical.TransactAsync(ops).ConfigureAwait(false);
        }
        catch (Exception e) when (e is IOException or System.Data.Common.DbException)
        {
            // The transaction did not apply: the old store is intact and its own shares still unseal it.
            await (Options.WarningWriter ?? Console.Error).WriteLineAsync($"ERROR: snapshot restore failed, the previous store is unchanged: {e.Message}").ConfigureAwait(false);
        }

        await LoadAsync(CancellationToken.None).ConfigureAwait(false);
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
