using System.Security.Cryptography;
using Morphisms.Kms.Audit;
using Morphisms.Kms.Barrier;
using Morphisms.Kms.Functions;
using Morphisms.Kms.Http;
using Morphisms.Kms.Pki;
using Morphisms.Kms.Policies;
using Morphisms.Kms.Snapshots;
using Morphisms.Kms.Storage;
using Morphisms.Kms.Sys;
using Morphisms.Kms.Tokens;

namespace Morphisms.Kms;

/// <summary>
/// Everything that exists only while the KMS is unsealed: the barrier and the stores behind it. Requests hold a
/// lease on it; sealing waits for the leases to end before the keys are overwritten. The wait is bounded
/// (<see cref="KmsServerOptions.SealDrainTimeout"/>): a request still running after it finds the keys wiped and
/// fails as sealed (<see cref="BarrierStorage.Wiped"/>) — nothing is ever encrypted, wrapped or MACed under zeros.
/// </summary>
internal sealed class UnsealedState
{
    /// <summary>Cluster identity, stored at init.</summary>
    public const string ClusterPath = "core/cluster";

    private readonly Lock _lock = new();
    /// <summary>Expired tokens revoked per transaction by the periodic sweep.</summary>
    private const int TokenSweepBatch = 100;

    private readonly TaskCompletionSource _drained = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private readonly CancellationTokenSource _stopping = new();
    private readonly byte[] _rootKey;
    private readonly KmsServerOptions _options;
    private int _leases;
    private bool _closing;
    private TaskCompletionSource? _othersDrained;

    private UnsealedState(KmsServerOptions options, byte[] rootKey, BarrierStorage barrier, BarrierKeyRotation rotation, TokenStore tokens, PolicyStore policies, MountTable mounts, AuditKeys auditKeys, AuditRecorder? audit, ClusterInfo cluster, FunctionRegistry functions, KmsRootCa rootCa)
    {
        Rotation = rotation;
        _options = options;
        Functions = functions;
        RootCa = rootCa;
        _rootKey = rootKey;
        Barrier = barrier;
        Tokens = tokens;
        Policies = policies;
        Mounts = mounts;
        AuditKeys = auditKeys;
        Audit = audit;
        Cluster = cluster;
    }

    /// <summary>The barrier view of storage.</summary>
    public BarrierStorage Barrier { get; }

    /// <summary>Automatic rotation of the barrier key: its policy (<c>sys/rotate/config</c>) and background loop.</summary>
    public BarrierKeyRotation Rotation { get; }

    /// <summary>Tokens.</summary>
    public TokenStore Tokens { get; }

    /// <summary>ACL policies.</summary>
    public PolicyStore Policies { get; }

    /// <summary>Mounted secrets engines.</summary>
    public MountTable Mounts { get; }

    /// <summary>Audit keys (value HMACs and chain MACs).</summary>
    public AuditKeys AuditKeys { get; }

    /// <summary>The audit device, when a log path is configured.</summary>
    public AuditRecorder? Audit { get; }

    /// <summary>The cluster's name and id.</summary>
    public ClusterInfo Cluster { get; }

    /// <summary>Registered functions and their reference values.</summary>
    public FunctionRegistry Functions { get; }

    /// <summary>The KMS root CA (self-attestation binds its certificate).</summary>
    public KmsRootCa RootCa { get; }

    /// <summary>Opens the stores over a decrypted keyring.</summary>
    public static async Task<UnsealedState> OpenAsync(IPhysicalStorage physical, byte[] rootKey, Keyring keyring, KmsServerOptions options, CancellationToken ct)
    {
        var barrier = new BarrierStorage(physical, keyring);
        var rotatedAfterRestore = await RotateAfterRestoreAsync(physical, barrier, rootKey, options.TimeProvider, ct).ConfigureAwait(false);
        var salt = await barrier.GetAsync(TokenStore.SaltPath, ct).ConfigureAwait(false)
            ?? throw new BarrierException("the token salt is missing from storage");
        var auditSecret = await barrier.GetAsync(AuditKeys.StoragePath, ct).ConfigureAwait(false)
            ?? throw new BarrierException("the audit key is missing from storage");
        var cluster = await barrier.GetJsonAsync<ClusterInfo>(ClusterPath, ct).ConfigureAwait(false)
            ?? throw new BarrierException("the cluster identity is missing from storage");
        var auditKeys = AuditKeys.Derive(auditSecret);
        CryptographicOperations.ZeroMemory(auditSecret);

        var mounts = new MountTable(barrier, options.TimeProvider, new Kv.KvWatch(options.MaxKvWaiters, options.TimeProvider));
        await mounts.LoadAsync(ct).ConfigureAwait(false);
        var rootCa = await KmsRootCa.LoadOrCreateAsync(barrier, cluster.Name, options.TimeProvider, ct).ConfigureAwait(false);
        var audit = options.AuditLogPath is { } path ? new AuditRecorder(AuditLog.Open(path, auditKeys, options.TimeProvider), auditKeys) : null;
        var tokens = new TokenStore(barrier, salt, options.TimeProvider, new TokenStoreOptions(options.DefaultTokenTtl, options.MaxTokenTtl));
        var functions = new FunctionRegistry(barrier, options.TimeProvider, mounts.KvKeyExistsAsync);
        var rotation = await BarrierKeyRotation.LoadAsync(
            barrier, (term, now) => barrier.RotateFromAsync(rootKey, term, now, CancellationToken.None), audit, options, ct).ConfigureAwait(false);
        if (rotatedAfterRestore is { } term)
        {
            var notice = $"barrier key rotated after a snapshot restore: term {term} installed before serving";
            audit?.Notice(notice);
            await (options.WarningWriter ?? Console.Error).WriteLineAsync("NOTICE: " + notice).ConfigureAwait(false);
        }

        var state = new UnsealedState(options, rootKey, barrier, rotation, tokens, new PolicyStore(barrier), mounts, auditKeys, audit, cluster, functions, rootCa);
        rotation.Start();
        if (options.TokenSweepInterval > TimeSpan.Zero)
        {
            // Runs for as long as this state serves: only an unsealed active node opens one (a standby loads nothing),
            // and the sweep ends when it closes (seal, step-down, restore). Never faults: failures are warnings.
            _ = state.SweepTokensAsync(options.TokenSweepInterval);
        }

        return state;
    }

    /// <summary>
    /// The first unseal after a snapshot restore adds a barrier key term before anything is read or written: the
    /// restored active term may have made more encryptions after the snapshot than the restored count says, so only a
    /// new term's count is known. The marker goes only once the new keyring is stored; a crash in between makes one
    /// more term at the next unseal, which costs nothing. Returns the new term, or null when there was no restore.
    /// </summary>
    private static async Task<uint?> RotateAfterRestoreAsync(IPhysicalStorage physical, BarrierStorage barrier, byte[] rootKey, TimeProvider time, CancellationToken ct)
    {
        if (await physical.GetAsync(StorageSnapshot.RotatePendingPath, ct).ConfigureAwait(false) is null)
        {
            return null;
        }

        var rotated = await barrier.RotateAsync(rootKey, time.GetUtcNow(), ct).ConfigureAwait(false);
        await physical.DeleteAsync(StorageSnapshot.RotatePendingPath, ct).ConfigureAwait(false);
        return rotated.ActiveTerm;
    }

    /// <summary>
    /// Every <paramref name="interval"/>, revokes the tokens that expired (<see cref="TokenStore.SweepExpiredAsync"/>)
    /// under a lease of its own, so a seal waits for (and cancels) a sweep under way like any request.
    /// </summary>
    private async Task SweepTokensAsync(TimeSpan interval)
    {
        var ct = _stopping.Token;
        while (true)
        {
            try
            {
                await Task.Delay(interval, _options.TimeProvider, ct).ConfigureAwait(false);
            }
            catch (OperationCanceledException)
            {
                return;
            }

            if (!TryAcquire())
            {
                return;
            }

            try
            {
                await Tokens.SweepExpiredAsync(TokenSweepBatch, ct).ConfigureAwait(false);
            }
            catch (Exception) when (ct.IsCancellationRequested)
            {
                return;
            }
            catch (Exception e)
            {
                // A storage outage or a fenced write (this node lost the HA lock and is stepping down): the next round
                // (or the next active node) tries again; expired tokens are refused meanwhile all the same.
                try
                {
                    await (_options.WarningWriter ?? Console.Error).WriteLineAsync($"WARNING! the sweep of expired tokens failed, retrying in {interval}: {e.GetType().Name}: {e.Message}").ConfigureAwait(false);
                }
                catch (Exception)
                {
                    // Nothing else to tell it to.
                }
            }
            finally
            {
                Release();
            }
        }
    }

    /// <summary>Rotates the barrier keyring (<c>sys/rotate</c>).</summary>
    public Task<Keyring> RotateAsync(DateTimeOffset now, CancellationToken ct) => Barrier.RotateAsync(_rootKey, now, ct);

    /// <summary>A key derived from the root key for one purpose (<see cref="RootSubkeys"/>); the root key itself never leaves.</summary>
    /// <exception cref="KmsException">503: the KMS sealed and the root key may have been zeroed under the derivation.</exception>
    public byte[] DeriveRootSubkey(string purpose)
    {
        var key = RootSubkeys.Derive(_rootKey, purpose);

        // The root key is zeroed only after the barrier's flag is set (CloseAsync), so checking it after use suffices.
        if (Barrier.Wiped)
        {
            CryptographicOperations.ZeroMemory(key);
            throw KmsException.Sealed();
        }

        return key;
    }

    /// <summary>Whether <paramref name="ciphertext"/> (made for <paramref name="path"/>) was encrypted under this root key.</summary>
    /// <exception cref="KmsException">503: the KMS sealed, so a "no" could come from a zeroed root key.</exception>
    public bool RootKeyOpens(string path, byte[] ciphertext)
    {
        bool opens;
        try
        {
            CryptographicOperations.ZeroMemory(AesGcmEnvelope.Open(_rootKey, path, ciphertext));
            opens = true;
        }
        catch (BarrierException)
        {
            opens = false;
        }

        return Barrier.Wiped ? throw KmsException.Sealed() : opens;
    }

    /// <summary>Takes a lease for one request; false once sealing has begun.</summary>
    public bool TryAcquire()
    {
        lock (_lock)
        {
            if (_closing)
            {
                return false;
            }

            _leases++;
            return true;
        }
    }

    /// <summary>Ends a lease taken by <see cref="TryAcquire"/>.</summary>
    public void Release()
    {
        lock (_lock)
        {
            if (--_leases <= 1 && _closing)
            {
                _othersDrained?.TrySetResult();
                if (_leases == 0)
                {
                    _drained.TrySetResult();
                }
            }
        }
    }

    /// <summary>
    /// For a restore, which answers with the outcome of its replacement and so cannot wait for its own lease: refuses
    /// new leases and waits until the caller's lease is the only one left, at most
    /// <see cref="KmsServerOptions.SealDrainTimeout"/>. Wipes nothing: <see cref="CloseAsync"/> still follows.
    /// </summary>
    public async Task DrainOthersAsync()
    {
        Task others;
        lock (_lock)
        {
            _closing = true;
            others = _leases <= 1 ? Task.CompletedTask : (_othersDrained ??= new(TaskCreationOptions.RunContinuationsAsynchronously)).Task;
        }

        _stopping.Cancel();

        Mounts.KvWatch.Close();
        await Task.WhenAny(others, Task.Delay(_options.SealDrainTimeout, _options.TimeProvider)).ConfigureAwait(false);
        await Rotation.StopAsync(_options.SealDrainTimeout, persist: false).ConfigureAwait(false);
    }

    /// <summary>
    /// Refuses new leases, waits for current ones (at most <see cref="KmsServerOptions.SealDrainTimeout"/>), then
    /// wipes the keys. Never faults: unseals wait for this task, and the keys go whatever the audit device does.
    /// </summary>
    public async Task CloseAsync()
    {
        lock (_lock)
        {
            _closing = true;
            if (_leases == 0)
            {
                _drained.TrySetResult();
            }
        }

        // The token sweep stops between two storage operations rather than hold the seal up.
        _stopping.Cancel();

        // Long-poll reads would otherwise hold their leases (and the seal) until their wait ends.
        Mounts.KvWatch.Close();
        await Task.WhenAny(_drained.Task, Task.Delay(_options.SealDrainTimeout, _options.TimeProvider)).ConfigureAwait(false);

        // Requests have drained: the loop persists the final encryption count, before the keys go.
        await Rotation.StopAsync(_options.SealDrainTimeout).ConfigureAwait(false);
        string? auditFailure = null;
        try
        {
            try
            {
                Audit?.Notice("sealed");
            }
            finally
            {
                Audit?.Dispose();
            }
        }
        catch (Exception e)
        {
            // A full disk or a failed audit device must not keep the keys in memory, nor fault this task: every
            // later unseal awaits it.
            auditFailure = $"{e.GetType().Name}: {e.Message}";
        }

        // The barrier's flag first: requests still running check it after each key use (see BarrierStorage.Wiped).
        Barrier.Wipe();
        AuditKeys.Zero();
        RootCa.Dispose();
        CryptographicOperations.ZeroMemory(_rootKey);
        if (auditFailure is not null)
        {
            await (_options.WarningWriter ?? Console.Error).WriteLineAsync($"WARNING! the audit device could not record the seal (the keys were wiped): {auditFailure}").ConfigureAwait(false);
        }
    }
}

/// <summary>The cluster's identity, as Vault reports it in sys/health and sys/seal-status.</summary>
/// <param name="Name">The cluster name.</param>
/// <param name="Id">A random id fixed at init.</param>
internal sealed record ClusterInfo(string Name, string Id);
