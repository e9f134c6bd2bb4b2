using System.Security.Cryptography;
using Morphisms.Kms.Audit;
using Morphisms.Kms.Barrier;
using Morphisms.Kms.Functions;
using Morphisms.Kms.Pki;
using Morphisms.Kms.Policies;
using Morphisms.Kms.Storage;
using Morphisms.Kms.Sys;
using Morphisms.Kms.Tokens;

namespace Morphisms.Kms;

/// <summary>
/// Everything that exists only while the KMS is unsealed: the barrier and the stores behind it. Requests hold a
/// lease on it; sealing waits for the leases to end before the keys are overwritten, so no request ever runs
/// against zeroed keys.
/// </summary>
internal sealed class UnsealedState
{
    /// <summary>Cluster identity, stored at init.</summary>
    public const string ClusterPath = "core/cluster";

    private readonly Lock _lock = new();
    private readonly TaskCompletionSource _drained = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private readonly byte[] _rootKey;
    private int _leases;
    private bool _closing;

    private UnsealedState(byte[] rootKey, BarrierStorage barrier, TokenStore tokens, PolicyStore policies, MountTable mounts, AuditKeys auditKeys, AuditRecorder? audit, ClusterInfo cluster, FunctionRegistry functions, KmsRootCa rootCa)
    {
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
        var functions = new FunctionRegistry(barrier, options.TimeProvider);
        return new UnsealedState(rootKey, barrier, tokens, new PolicyStore(barrier), mounts, auditKeys, audit, cluster, functions, rootCa);
    }

    /// <summary>Rotates the barrier keyring (<c>sys/rotate</c>).</summary>
    public Task<Keyring> RotateAsync(DateTimeOffset now, CancellationToken ct) => Barrier.RotateAsync(_rootKey, now, ct);

    /// <summary>A key derived from the root key for one purpose (<see cref="RootSubkeys"/>); the root key itself never leaves.</summary>
    public byte[] DeriveRootSubkey(string purpose) => RootSubkeys.Derive(_rootKey, purpose);

    /// <summary>Whether <paramref name="ciphertext"/> (made for <paramref name="path"/>) was encrypted under this root key.</summary>
    public bool RootKeyOpens(string path, byte[] ciphertext)
    {
        try
        {
            CryptographicOperations.ZeroMemory(AesGcmEnvelope.Open(_rootKey, path, ciphertext));
            return true;
        }
        catch (BarrierException)
        {
            return false;
        }
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
            if (--_leases == 0 && _closing)
            {
                _drained.TrySetResult();
            }
        }
    }

    /// <summary>Refuses new leases, waits for current ones (bounded), then wipes the keys.</summary>
    public async Task CloseAsync(TimeSpan drainTimeout)
    {
        lock (_lock)
        {
            _closing = true;
            if (_leases == 0)
            {
                _drained.TrySetResult();
            }
        }

        // Long-poll reads would otherwise hold their leases (and the seal) until their wait ends.
        Mounts.KvWatch.Close();
        await Task.WhenAny(_drained.Task, Task.Delay(drainTimeout)).ConfigureAwait(false);
        Audit?.Notice("sealed");
        Audit?.Dispose();
        Barrier.Keyring.Zero();
        AuditKeys.Zero();
        RootCa.Dispose();
        CryptographicOperations.ZeroMemory(_rootKey);
    }
}

/// <summary>The cluster's identity, as Vault reports it in sys/health and sys/seal-status.</summary>
/// <param name="Name">The cluster name.</param>
/// <param name="Id">A random id fixed at init.</param>
internal sealed record ClusterInfo(string Name, string Id);
