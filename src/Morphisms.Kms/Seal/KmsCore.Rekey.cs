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
/// root key, keyring and data are untouched, so nothing else changes; the old shares stop working at once.
/// </summary>
internal sealed partial class KmsCore
{
    private RekeyProgress? _rekey;

    /// <summary>The rekey attempt in progress, or null.</summary>
    public RekeyProgress? Rekey => Volatile.Read(ref _rekey);

    /// <summary>Starts a rekey attempt with the new layout.</summary>
    /// <exception cref="KmsException">Bad layout, not initialised, or an attempt is already running.</exception>
    public async Task<RekeyProgress> RekeyInitAsync(int shares, int threshold, CancellationToken ct)
    {
        if (SealConfig.Validate(shares, threshold) is { } problem)
        {
            throw KmsException.BadRequest(problem);
        }

        await _transition.WaitAsync(ct).ConfigureAwait(false);
        try
        {
            _ = SealConfig ?? throw KmsException.BadRequest("Vault is not initialized");
            if (Rekey is not null)
            {
                throw KmsException.BadRequest("rekey already in progress");
            }

            var attempt = new RekeyProgress(shares, threshold);
            Volatile.Write(ref _rekey, attempt);
            return attempt;
        }
        finally
        {
            _transition.Release();
        }
    }

    /// <summary>Cancels the rekey attempt, wiping the shares it collected.</summary>
    public async Task RekeyCancelAsync(CancellationToken ct)
    {
        await _transition.WaitAsync(ct).ConfigureAwait(false);
        try
        {
            Interlocked.Exchange(ref _rekey, null)?.Shares.Reset();
        }
        finally
        {
            _transition.Release();
        }
    }

    /// <summary>
    /// Adds one current share to the attempt; at the threshold, writes the new root-key wrapping and seal config in
    /// one transaction and returns the new shares (the only time they exist outside their holders).
    /// </summary>
    /// <exception cref="KmsException">No attempt, wrong nonce, malformed share, or shares that do not open the root key (the attempt's progress resets).</exception>
    public async Task<IReadOnlyList<byte[]>?> RekeyUpdateAsync(byte[] share, string nonce, CancellationToken ct)
    {
        await _transition.WaitAsync(ct).ConfigureAwait(false);
        try
        {
            var config = SealConfig ?? throw KmsException.BadRequest("Vault is not initialized");
            var attempt = Rekey;
            if (attempt is null)
            {
                CryptographicOperations.ZeroMemory(share);
                throw KmsException.BadRequest("no rekey in progress");
            }

            if (!CryptographicOperations.FixedTimeEquals(System.Text.Encoding.UTF8.GetBytes(nonce), System.Text.Encoding.UTF8.GetBytes(attempt.Nonce)))
            {
                CryptographicOperations.ZeroMemory(share);
                throw KmsException.BadRequest($"invalid 'nonce': the current rekey nonce is {attempt.Nonce}");
            }

            var expected = config.SecretShares == 1 ? 32 : 33;
            if (share.Length != expected)
            {
                CryptographicOperations.ZeroMemory(share);
                throw KmsException.BadRequest($"invalid 'key': an unseal key is {expected} bytes, hex or base64 encoded");
            }

            attempt.Shares.Add(share);
            if (attempt.Shares.Count < config.SecretThreshold)
            {
                return null;
            }

            byte[] oldKey;
            try
            {
                oldKey = config.SecretShares == 1 ? attempt.Shares.Parts[0].ToArray() : Shamir.Combine(attempt.Shares.Parts);
            }
            catch (ArgumentException e)
            {
                attempt.Shares.Reset();
                throw KmsException.BadRequest($"rekey failed: {e.Message}; progress was reset");
            }
            finally
            {
                attempt.Shares.Reset();
            }

            try
            {
                return await CommitRekeyAsync(oldKey, attempt, ct).ConfigureAwait(false);
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

    private async Task<IReadOnlyList<byte[]>> CommitRekeyAsync(byte[] oldKey, RekeyProgress attempt, CancellationToken ct)
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

        var newKey = RandomNumberGenerator.GetBytes(32);
        try
        {
            var shares = attempt.NewShares == 1 ? [newKey.ToArray()] : Shamir.Split(newKey, attempt.NewShares, attempt.NewThreshold);
            var config = new SealConfig("shamir", attempt.NewShares, attempt.NewThreshold);

            // Both records in one transaction: a crash leaves either the old shares or the new ones working, never neither.
            await _physical.TransactAsync(
                [
                    StorageOperation.Put(SealConfig.RootKeyPath, AesGcmEnvelope.Seal(newKey, 0, SealConfig.RootKeyPath, rootKey)),
                    StorageOperation.Put(SealConfig.StoragePath, JsonSerializer.SerializeToUtf8Bytes(config)),
                ],
                ct).ConfigureAwait(false);
            Volatile.Write(ref _sealConfig, config);
            Volatile.Write(ref _rekey, null);

            // Shares of the old layout collected for an unseal are meaningless now.
            _progress.Reset();
            return shares;
        }
        finally
        {
            CryptographicOperations.ZeroMemory(newKey);
            CryptographicOperations.ZeroMemory(rootKey);
        }
    }
}
