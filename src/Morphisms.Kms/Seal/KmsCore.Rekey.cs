using System.Security.Cryptography;
using System.Text.Json;
using Morphisms.Kms.Barrier;
using Morphisms.Kms.Http;
using Morphisms.Kms.Seal;
using Morphisms.Kms.Storage;

namespace Morphisms.Kms;

/// <summary>
/// Rekey (Vault's <c>sys/rekey/*</c>): a threshold of the current shares reconstructs the unseal key, which must
/// open the root key; the root key is then re-encrypted under a fresh unseal key split into the new layout. The
/// root key, keyring and data are untouched, so nothing else changes; the old shares stop working at once — or,
/// with <c>require_verification</c>, only once a threshold of the new shares came back (<c>sys/rekey/verify</c>).
/// </summary>
internal sealed partial class KmsCore
{
    private RekeyProgress? _rekey;

    /// <summary>The rekey attempt in progress, or null.</summary>
    public RekeyProgress? Rekey => Volatile.Read(ref _rekey);

    /// <summary>
    /// Picks up a rekey waiting for verification from storage when none is in memory: a seal (or restart) ends the
    /// attempt and wipes the shares it collected, but the new shares were handed out and can still be verified.
    /// </summary>
    public async Task LoadPendingRekeyAsync(UnsealedState state, CancellationToken ct)
    {
        await _transition.WaitAsync(ct).ConfigureAwait(false);
        try
        {
            await LoadPendingRekeyLockedAsync(state, ct).ConfigureAwait(false);
        }
        finally
        {
            _transition.Release();
        }
    }

    /// <summary>Starts a rekey attempt with the new layout.</summary>
    /// <exception cref="KmsException">Bad layout, not initialised, or an attempt is already running (or waiting for verification).</exception>
    public async Task<RekeyProgress> RekeyInitAsync(int shares, int threshold, bool requireVerification, UnsealedState state, CancellationToken ct)
    {
        if (SealConfig.Validate(shares, threshold) is { } problem)
        {
            throw KmsException.BadRequest(problem);
        }

        await _transition.WaitAsync(ct).ConfigureAwait(false);
        try
        {
            _ = SealConfig ?? throw KmsException.BadRequest("Vault is not initialized");
            await LoadPendingRekeyLockedAsync(state, ct).ConfigureAwait(false);
            if (Rekey is not null)
            {
                throw KmsException.BadRequest("rekey already in progress");
            }

            var attempt = new RekeyProgress(state, shares, threshold, requireVerification);
            Volatile.Write(ref _rekey, attempt);
            return attempt;
        }
        finally
        {
            _transition.Release();
        }
    }

    /// <summary>Cancels the rekey attempt, wiping the shares it collected; new shares waiting for verification will never unseal.</summary>
    public async Task RekeyCancelAsync(CancellationToken ct)
    {
        await _transition.WaitAsync(ct).ConfigureAwait(false);
        try
        {
            // First: should the delete fail, the attempt stays as it was and the cancel can be retried.
            await _physical.DeleteAsync(PendingRekey.StoragePath, ct).ConfigureAwait(false);
            Interlocked.Exchange(ref _rekey, null)?.Wipe();
        }
        finally
        {
            _transition.Release();
        }
    }

    /// <summary>
    /// Adds one current share to the attempt; at the threshold, returns the new shares (the only time they exist
    /// outside their holders). Without verification, the new root-key wrapping and seal config are written in one
    /// transaction first; with it, they are stored pending (<see cref="PendingRekey"/>) and the current ones stay.
    /// </summary>
    /// <exception cref="KmsException">No attempt, one waiting for verification, wrong nonce, malformed share, or shares that do not open the root key (the attempt's progress resets).</exception>
    public async Task<RekeyResult?> RekeyUpdateAsync(byte[] share, string nonce, UnsealedState state, CancellationToken ct)
    {
        await _transition.WaitAsync(ct).ConfigureAwait(false);
        try
        {
            var config = SealConfig ?? throw KmsException.BadRequest("Vault is not initialized");
            await LoadPendingRekeyZeroingAsync(state, share, ct).ConfigureAwait(false);
            var attempt = Rekey;
            if (attempt is null)
            {
                CryptographicOperations.ZeroMemory(share);
                throw KmsException.BadRequest("no rekey in progress");
            }

            if (attempt.Verification is not null)
            {
                CryptographicOperations.ZeroMemory(share);
                throw KmsException.BadRequest("the rekey is waiting for verification: submit a threshold of the new shares to sys/rekey/verify, or cancel it (DELETE sys/rekey/init)");
            }

            if (CollectShare(attempt.Shares, share, nonce, new ShareRound("rekey", attempt.Nonce, config.SecretShares, config.SecretThreshold)) is not { } oldKey)
            {
                return null;
            }

            try
            {
                return await CommitRekeyAsync(oldKey, attempt, state, ct).ConfigureAwait(false);
            }
            finally
            {
                CryptographicOperations.ZeroMemory(oldKey);
            }
        }
        finally
        {
            _transition.Release();
        }
    }

    /// <summary>
    /// Adds one new share to the verification; at the new threshold, the shares must open the pending root-key
    /// wrapping, which then replaces the current one together with the seal config, in one transaction. True once
    /// that happened: the old shares no longer unseal.
    /// </summary>
    /// <exception cref="KmsException">No verification in progress, wrong nonce, malformed share, or new shares that do not open the pending root key (progress resets; nothing changes).</exception>
    public async Task<bool> RekeyVerifyAsync(byte[] share, string nonce, UnsealedState state, CancellationToken ct)
    {
        await _transition.WaitAsync(ct).ConfigureAwait(false);
        try
        {
            await LoadPendingRekeyZeroingAsync(state, share, ct).ConfigureAwait(false);
            var attempt = Rekey;
            if (attempt?.Verification is not { } verification)
            {
                CryptographicOperations.ZeroMemory(share);
                throw KmsException.BadRequest("no rekey verification in progress");
            }

            if (CollectShare(verification.Shares, share, nonce, new ShareRound("rekey verification", verification.Nonce, attempt.NewShares, attempt.NewThreshold)) is not { } newKey)
            {
                return false;
            }

            try
            {
                await CommitVerifiedRekeyAsync(newKey, state, ct).ConfigureAwait(false);
                return true;
            }
            finally
            {
                CryptographicOperations.ZeroMemory(newKey);
            }
        }
        finally
        {
            _transition.Release();
        }
    }

    /// <summary>Restarts the verification (<c>DELETE sys/rekey/verify</c>): its new shares are wiped and it gets a fresh nonce; the rekey itself stays.</summary>
    /// <exception cref="KmsException">No verification in progress.</exception>
    public async Task RekeyVerifyRestartAsync(UnsealedState state, CancellationToken ct)
    {
        await _transition.WaitAsync(ct).ConfigureAwait(false);
        try
        {
            await LoadPendingRekeyLockedAsync(state, ct).ConfigureAwait(false);
            var verification = Rekey?.Verification ?? throw KmsException.BadRequest("no rekey verification in progress");
            verification.Restart();
        }
        finally
        {
            _transition.Release();
        }
    }

    /// <summary>
    /// Checks one share of a round against its nonce and the key layout, adds it to <paramref name="progress"/>, and at
    /// the threshold combines the collected shares into the key they split; the progress resets either way. Null below
    /// the threshold. A refused share is zeroed; an accepted one belongs to <paramref name="progress"/>.
    /// </summary>
    private static byte[]? CollectShare(UnsealProgress progress, byte[] share, string nonce, ShareRound round)
    {
        if (!NonceMatches(nonce, round.Nonce))
        {
            CryptographicOperations.ZeroMemory(share);
            throw KmsException.BadRequest($"invalid 'nonce': the current {round.Name} nonce is {round.Nonce}");
        }

        var expected = UnsealShares.ShareLength(round.Shares);
        if (share.Length != expected)
        {
            CryptographicOperations.ZeroMemory(share);
            throw KmsException.BadRequest($"invalid 'key': a share for this {round.Name} is {expected} bytes, hex or base64 encoded");
        }

        progress.Add(share);
        if (progress.Count < round.Threshold)
        {
            return null;
        }

        try
        {
            return UnsealShares.Combine(round.Shares, progress.Parts);
        }
        catch (ArgumentException e)
        {
            throw KmsException.BadRequest($"{round.Name} failed: {e.Message}; progress was reset");
        }
        finally
        {
            progress.Reset();
        }
    }

    /// <summary>One round of share collection: the current shares for a rekey, the new ones for its verification.</summary>
    private readonly record struct ShareRound(string Name, string Nonce, int Shares, int Threshold);

    private static bool NonceMatches(string given, string expected) =>
        CryptographicOperations.FixedTimeEquals(System.Text.Encoding.UTF8.GetBytes(given), System.Text.Encoding.UTF8.GetBytes(expected));

    /// <summary>
    /// Ends an attempt started or loaded under another state than the one served now (see
    /// <see cref="RekeyProgress.State"/>), then picks up a rekey waiting for verification from
    /// <paramref name="state"/>'s store. A request still running on a state no longer served (sealed, restored,
    /// stepped down) is answered as sealed: it would load the store a restore replaces, or one another node writes.
    /// Callers hold the transition lock.
    /// </summary>
    private async Task LoadPendingRekeyLockedAsync(UnsealedState state, CancellationToken ct)
    {
        EndStaleRekeyLocked();
        if (!ReferenceEquals(state, Volatile.Read(ref _active)))
        {
            throw KmsException.Sealed();
        }

        if (Rekey is null && await state.Barrier.GetJsonAsync<PendingRekey>(PendingRekey.StoragePath, ct).ConfigureAwait(false) is { } pending)
        {
            Volatile.Write(ref _rekey, RekeyProgress.Verifying(pending, state));
        }
    }

    /// <summary><see cref="LoadPendingRekeyLockedAsync"/>, zeroing <paramref name="share"/> when it fails (the caller never gets to use it).</summary>
    private async Task LoadPendingRekeyZeroingAsync(UnsealedState state, byte[] share, CancellationToken ct)
    {
        try
        {
            await LoadPendingRekeyLockedAsync(state, ct).ConfigureAwait(false);
        }
        catch
        {
            CryptographicOperations.ZeroMemory(share);
            throw;
        }
    }

    /// <summary>Ends (and wipes) the attempt when the state it belongs to is no longer the one served. Callers hold the transition lock.</summary>
    private void EndStaleRekeyLocked()
    {
        if (Rekey is { } attempt && !ReferenceEquals(attempt.State, Volatile.Read(ref _active)))
        {
            Volatile.Write(ref _rekey, null);
            attempt.Wipe();
        }
    }

    /// <summary>
    /// <see cref="EndStaleRekeyLocked"/> once the transition lock is free: an HA step-down stops serving at once and
    /// cannot wait for it, and a rekey update uses the attempt's shares under it.
    /// </summary>
    private async Task EndStaleRekeyAsync()
    {
        await _transition.WaitAsync().ConfigureAwait(false);
        try
        {
            EndStaleRekeyLocked();
        }
        finally
        {
            _transition.Release();
        }
    }

    private async Task<RekeyResult> CommitRekeyAsync(byte[] oldKey, RekeyProgress attempt, UnsealedState state, CancellationToken ct)
    {
        var wrapped = await _physical.GetAsync(SealConfig.RootKeyPath, ct).ConfigureAwait(false)
            ?? throw new BarrierException("the root key is missing from storage");
        byte[] rootKey;
        try
        {
            rootKey = AesGcmEnvelope.Open(oldKey, SealConfig.RootKeyPath, wrapped);
        }
        catch (BarrierException)
        {
            throw KmsException.BadRequest("rekey failed: the key shares do not decrypt the root key; progress was reset");
        }

        var newKey = RandomNumberGenerator.GetBytes(UnsealShares.KeyLength);
        try
        {
            var shares = UnsealShares.Split(newKey, attempt.NewShares, attempt.NewThreshold);
            var newWrapping = AesGcmEnvelope.Seal(newKey, 0, SealConfig.RootKeyPath, rootKey);
            if (attempt.RequireVerification)
            {
                // The new shares exist only in the reply until their holders send them back: keep the current ones
                // in force, so a reply lost on the way costs a new rekey, not the KMS.
                await state.Barrier.PutJsonAsync(PendingRekey.StoragePath, new PendingRekey(attempt.Nonce, attempt.NewShares, attempt.NewThreshold, newWrapping), ct).ConfigureAwait(false);
                attempt.BeginVerification();
                return new RekeyResult(shares, attempt.Nonce, attempt.Verification!.Nonce);
            }

            var config = new SealConfig("shamir", attempt.NewShares, attempt.NewThreshold);

            // Both records in one transaction: a crash leaves either the old shares or the new ones working, never neither.
            await _physical.TransactAsync(
                [
                    StorageOperation.Put(SealConfig.RootKeyPath, newWrapping),
                    StorageOperation.Put(SealConfig.StoragePath, JsonSerializer.SerializeToUtf8Bytes(config)),
                ],
                ct).ConfigureAwait(false);
            Volatile.Write(ref _sealConfig, config);
            Volatile.Write(ref _rekey, null);

            // Shares of the old layout collected for an unseal are meaningless now.
            _progress.Reset();
            return new RekeyResult(shares, attempt.Nonce, null);
        }
        finally
        {
            CryptographicOperations.ZeroMemory(newKey);
            CryptographicOperations.ZeroMemory(rootKey);
        }
    }

    private async Task CommitVerifiedRekeyAsync(byte[] newKey, UnsealedState state, CancellationToken ct)
    {
        if (await state.Barrier.GetJsonAsync<PendingRekey>(PendingRekey.StoragePath, ct).ConfigureAwait(false) is not { } pending)
        {
            // Cancelled or replaced by a restore since this attempt was loaded.
            Interlocked.Exchange(ref _rekey, null)?.Wipe();
            throw KmsException.BadRequest("no rekey verification in progress: the pending rekey is gone");
        }

        byte[] rootKey;
        try
        {
            rootKey = AesGcmEnvelope.Open(newKey, SealConfig.RootKeyPath, pending.RootKey);
        }
        catch (BarrierException)
        {
            throw KmsException.BadRequest("rekey verification failed: the new key shares do not decrypt the pending root key; progress was reset");
        }

        try
        {
            // The wrapping must hold this store's root key (the one that opens the keyring), or the switch would
            // leave shares that open nothing.
            var keyring = await _physical.GetAsync(BarrierStorage.KeyringPath, ct).ConfigureAwait(false)
                ?? throw new BarrierException("the keyring is missing from storage");
            try
            {
                BarrierStorage.UnwrapKeyring(rootKey, keyring).Zero();
            }
            catch (BarrierException)
            {
                throw KmsException.BadRequest("rekey verification failed: the pending root key is not this KMS's; cancel the rekey (DELETE sys/rekey/init)");
            }
        }
        finally
        {
            CryptographicOperations.ZeroMemory(rootKey);
        }

        var config = new SealConfig("shamir", pending.SecretShares, pending.SecretThreshold);

        // One transaction: a crash leaves either the old shares working (and the rekey still pending) or the new ones.
        await _physical.TransactAsync(
            [
                StorageOperation.Put(SealConfig.RootKeyPath, pending.RootKey),
                StorageOperation.Put(SealConfig.StoragePath, JsonSerializer.SerializeToUtf8Bytes(config)),
                StorageOperation.Delete(PendingRekey.StoragePath),
            ],
            ct).ConfigureAwait(false);
        Volatile.Write(ref _sealConfig, config);
        Volatile.Write(ref _rekey, null);
        _progress.Reset();
    }
}
