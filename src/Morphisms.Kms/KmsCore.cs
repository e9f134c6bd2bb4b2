using System.Security.Cryptography;
using System.Text;
using System.Text.Json;
using Morphisms.Kms.Audit;
using Morphisms.Kms.Barrier;
using Morphisms.Kms.HighAvailability;
using Morphisms.Kms.Http;
using Morphisms.Kms.Policies;
using Morphisms.Kms.Seal;
using Morphisms.Kms.Storage;
using Morphisms.Kms.Sys;
using Morphisms.Kms.Tokens;

namespace Morphisms.Kms;

/// <summary>
/// The seal state machine: uninitialised → sealed → unsealed. The key chain is
/// shares → (Shamir) unseal key → root key (<c>core/root-key</c>) → keyring (<c>core/keyring</c>) → data.
/// Init writes everything in one storage transaction, so a crash leaves the KMS either uninitialised or fully
/// initialised.
/// </summary>
internal sealed partial class KmsCore : IAsyncDisposable
{
    private readonly IPhysicalStorage _physical;
    private readonly SemaphoreSlim _transition = new(1, 1);
    private readonly UnsealProgress _progress = new();
    private SealConfig? _sealConfig;
    private UnsealedState? _active;
    private Task _closing = Task.CompletedTask;

    // HA only: the root key of an unsealed node, kept so it can load its state whenever it becomes the active node.
    private byte[]? _heldRootKey;

    public KmsCore(IPhysicalStorage physical, KmsServerOptions options)
    {
        _physical = physical;
        Options = options;
        if (physical is PostgresStorage postgres)
        {
            Election = new LeaderElection(postgres, this, options.TimeProvider, options.WarningWriter ?? Console.Error);
        }
    }

    /// <summary>Active/standby election when the storage is shared (PostgreSQL), else null.</summary>
    public LeaderElection? Election { get; }

    /// <summary>
    /// HA: unsealed but not serving — not the active node, or just won the lock and still loading its state — so
    /// sys/health answers as a standby and requests other than seal, health and leader are not served here.
    /// </summary>
    public bool Standby => Election is not null && Volatile.Read(ref _heldRootKey) is not null && !Serving;

    /// <summary>Whether an unsealed state is being served (false while sealed, standing by, or promoting).</summary>
    public bool Serving => Volatile.Read(ref _active) is not null;

    /// <summary>HA: whether this node is unsealed and so competes for the leadership lock.</summary>
    public bool WantsLeadership => Volatile.Read(ref _heldRootKey) is not null;

    /// <summary>The wipe of the last unsealed state (after a seal, step-down or restore), complete once its requests drained.</summary>
    public Task Closing => _closing;

    /// <summary>The server options.</summary>
    public KmsServerOptions Options { get; }

    /// <summary>The clock.</summary>
    public TimeProvider Time => Options.TimeProvider;

    /// <summary>The storage type reported by seal-status.</summary>
    public string StorageType => StorageSpec.TypeName(Options.Storage);

    /// <summary>The seal configuration once initialised.</summary>
    public SealConfig? SealConfig => Volatile.Read(ref _sealConfig);

    /// <summary>Whether <c>sys/init</c> has run.</summary>
    public bool Initialized => SealConfig is not null;

    /// <summary>Whether requests needing the barrier are refused.</summary>
    public bool Sealed => Volatile.Read(ref _active) is null && Volatile.Read(ref _heldRootKey) is null;

    /// <summary>Unseal shares submitted so far.</summary>
    public int UnsealProgressCount => _progress.Count;

    /// <summary>The current unseal attempt's nonce.</summary>
    public string UnsealNonce => _progress.Nonce;

    /// <summary>The unsealed state's cluster identity, or null while sealed.</summary>
    public ClusterInfo? Cluster => Volatile.Read(ref _active)?.Cluster;

    /// <summary>The KMS root CA's fingerprint (<see cref="Pki.KmsRootCa.Sha256"/>) while an unsealed state is served, else null.</summary>
    public string? RootCaSha256 => Volatile.Read(ref _active)?.RootCa.Sha256;

    /// <summary>Reads the seal configuration from storage (at start).</summary>
    public async Task LoadAsync(CancellationToken ct)
    {
        var bytes = await _physical.GetAsync(SealConfig.StoragePath, ct).ConfigureAwait(false);
        Volatile.Write(ref _sealConfig, bytes is null ? null : JsonSerializer.Deserialize<SealConfig>(bytes));
    }

    /// <summary>The unsealed state with a lease the caller must release, or null when sealed.</summary>
    public UnsealedState? Acquire()
    {
        var state = Volatile.Read(ref _active);
        return state is not null && state.TryAcquire() ? state : null;
    }

    /// <summary>
    /// Initialises the KMS: new keys, shares, root token, default policy and the <c>secret/</c> mount. With
    /// <paramref name="unseal"/> (auto-unseal), then unseals with the new unseal key before anyone else may touch
    /// the seal: a share sent to the public <c>sys/unseal</c> meanwhile waits, and finds the KMS unsealed.
    /// </summary>
    /// <returns>The shares and root token; a failure of the unseal (init has committed) is returned in it, not thrown.</returns>
    public async Task<InitResult> InitializeAsync(int shares, int threshold, bool unseal, CancellationToken ct)
    {
        if (SealConfig.Validate(shares, threshold) is { } problem)
        {
            throw KmsException.BadRequest(problem);
        }

        await _transition.WaitAsync(ct).ConfigureAwait(false);
        try
        {
            var (result, unsealKey) = await InitializeLockedAsync(shares, threshold, unseal, ct).ConfigureAwait(false);
            if (unsealKey is null)
            {
                return result;
            }

            try
            {
                await UnsealWithKeyAsync(unsealKey, ct).ConfigureAwait(false);
                return result;
            }
            catch (Exception e) when (!ct.IsCancellationRequested)
            {
                // The reply is the only copy of the shares and the root token: it must carry them and say why the
                // KMS stayed sealed, never turn into an error.
                return result with { UnsealFailure = e };
            }
            finally
            {
                CryptographicOperations.ZeroMemory(unsealKey);
            }
        }
        finally
        {
            _transition.Release();
        }
    }

    /// <summary>Init's keys and single transaction, under the transition lock; returns a copy of the unseal key when asked for (the caller wipes it).</summary>
    private async Task<(InitResult Result, byte[]? UnsealKey)> InitializeLockedAsync(int shares, int threshold, bool keepUnsealKey, CancellationToken ct)
    {
        IAsyncDisposable? haHold = null;
        try
        {
            await LoadAsync(ct).ConfigureAwait(false);
            if (Initialized)
            {
                throw KmsException.BadRequest("Vault is already initialized");
            }

            if (Election is not null)
            {
                // Nodes sharing one database: only the lock holder may initialise it, and it re-checks under the lock.
                haHold = await Election.HoldForInitAsync(ct).ConfigureAwait(false);
                await LoadAsync(ct).ConfigureAwait(false);
                if (Initialized)
                {
                    throw KmsException.BadRequest("Vault is already initialized");
                }
            }

            var now = Time.GetUtcNow();
            var unsealKey = RandomNumberGenerator.GetBytes(UnsealShares.KeyLength);
            var rootKey = RandomNumberGenerator.GetBytes(32);
            var keyring = Keyring.Create(now);
            try
            {
                var keys = UnsealShares.Split(unsealKey, shares, threshold);

                // Build the initial contents through a barrier over scratch storage: ciphertexts are bound to their
                // key path, not to the store, so they can be copied verbatim into one transaction.
                var staging = new InMemoryStorage();
                var barrier = new BarrierStorage(staging, keyring);
                var salt = RandomNumberGenerator.GetBytes(32);
                await barrier.PutAsync(TokenStore.SaltPath, salt, ct).ConfigureAwait(false);
                await barrier.PutAsync(AuditKeys.StoragePath, RandomNumberGenerator.GetBytes(32), ct).ConfigureAwait(false);
                var clusterId = Guid.NewGuid().ToString();
                await barrier.PutJsonAsync(UnsealedState.ClusterPath, new ClusterInfo(Options.ClusterName ?? "kms-cluster-" + clusterId[..8], clusterId), ct).ConfigureAwait(false);
                var (policyKey, policyValue) = PolicyStore.DefaultPolicyRecord();
                await barrier.PutAsync(policyKey, policyValue, ct).ConfigureAwait(false);
                await barrier.PutJsonAsync(MountTable.StoragePath, MountTable.Initial(), ct).ConfigureAwait(false);
                var tokens = new TokenStore(barrier, salt, Time, new TokenStoreOptions(Options.DefaultTokenTtl, Options.MaxTokenTtl));
                var (rootToken, _, _) = await tokens.CreateAsync(
                    new TokenCreateRequest { Policies = [BuiltinPolicies.Root], DisplayName = "root", Path = "auth/token/root", Renewable = false },
                    ct).ConfigureAwait(false);

                var config = new SealConfig("shamir", shares, threshold);
                var ops = staging.Snapshot().Select(e => StorageOperation.Put(e.Key, e.Value)).ToList();
                ops.Add(StorageOperation.Put(SealConfig.RootKeyPath, AesGcmEnvelope.Seal(unsealKey, 0, SealConfig.RootKeyPath, rootKey)));
                ops.Add(StorageOperation.Put(BarrierStorage.KeyringPath, BarrierStorage.WrapKeyring(rootKey, keyring)));
                ops.Add(StorageOperation.Put(SealConfig.StoragePath, JsonSerializer.SerializeToUtf8Bytes(config)));
                await _physical.TransactAsync(ops, ct).ConfigureAwait(false);
                Volatile.Write(ref _sealConfig, config);
                return (new InitResult(keys, rootToken), keepUnsealKey ? unsealKey.ToArray() : null);
            }
            finally
            {
                CryptographicOperations.ZeroMemory(unsealKey);
                CryptographicOperations.ZeroMemory(rootKey);
                keyring.Zero();
            }
        }
        finally
        {
            // Released before any unseal: an HA node then competes for the lock like any unsealed node.
            if (haHold is not null)
            {
                await haHold.DisposeAsync().ConfigureAwait(false);
            }
        }
    }

    /// <summary>Adds one unseal key share; unseals when the threshold is reached.</summary>
    /// <exception cref="KmsException">Not initialised, a malformed key, or shares that do not open the root key (progress resets).</exception>
    public async Task SubmitUnsealKeyAsync(byte[] share, CancellationToken ct)
    {
        await _transition.WaitAsync(ct).ConfigureAwait(false);
        try
        {
            // A restore replaces the seal config after the old state drains; judge the share against the new one.
            await _closing.ConfigureAwait(false);
            if (Election is not null && (_progress.Count == 0 || !Initialized))
            {
                // HA: another node may have initialised or rekeyed the shared store since this one last looked.
                await LoadAsync(ct).ConfigureAwait(false);
            }

            var config = SealConfig ?? throw KmsException.BadRequest("Vault is not initialized");
            if (!Sealed)
            {
                CryptographicOperations.ZeroMemory(share);
                return;
            }

            var expected = UnsealShares.ShareLength(config.SecretShares);
            if (share.Length != expected)
            {
                CryptographicOperations.ZeroMemory(share);
                throw KmsException.BadRequest($"invalid key: an unseal key is {expected} bytes, hex or base64 encoded");
            }

            _progress.Add(share);
            if (_progress.Count < config.SecretThreshold)
            {
                return;
            }

            byte[] unsealKey;
            try
            {
                unsealKey = UnsealShares.Combine(config.SecretShares, _progress.Parts);
            }
            catch (ArgumentException e)
            {
                _progress.Reset();
                throw KmsException.BadRequest($"unseal failed: {e.Message}; progress was reset");
            }

            try
            {
                await UnsealWithKeyAsync(unsealKey, ct).ConfigureAwait(false);
            }
            finally
            {
                CryptographicOperations.ZeroMemory(unsealKey);
                _progress.Reset();
            }
        }
        finally
        {
            _transition.Release();
        }
    }

    /// <summary>Discards submitted shares.</summary>
    public async Task ResetUnsealAsync(CancellationToken ct)
    {
        await _transition.WaitAsync(ct).ConfigureAwait(false);
        try
        {
            _progress.Reset();
        }
        finally
        {
            _transition.Release();
        }
    }

    /// <summary><c>sys/seal</c>: <see cref="BeginSeal"/> once no unseal, rekey or restore is half-way through.</summary>
    public async Task BeginSealAsync(CancellationToken ct)
    {
        await _transition.WaitAsync(ct).ConfigureAwait(false);
        try
        {
            BeginSeal();
        }
        finally
        {
            _transition.Release();
        }
    }

    /// <summary>
    /// Seals now: new requests see a sealed KMS at once; in-flight ones finish before the keys are wiped.
    /// Returns without waiting so the request that asked for the seal can complete. Callers hold the transition
    /// lock (the rekey attempt's shares are wiped here, and a rekey update uses them under that lock).
    /// </summary>
    public void BeginSeal()
    {
        // As in Vault, a seal ends the rekey attempt: the current shares it collected must not outlive the keys
        // they open, nor let the next unseal's holders finish a rekey they never saw started.
        Interlocked.Exchange(ref _rekey, null)?.Wipe();
        var held = Interlocked.Exchange(ref _heldRootKey, null);
        var state = Interlocked.Exchange(ref _active, null);
        if (state is not null)
        {
            _closing = state.CloseAsync();
        }

        if (held is not null)
        {
            // HA: the election hands the lock over once the requests drained (their writes still need it).
            _closing = ForgetAfterAsync(_closing, held);
            Election?.Wake();
        }
    }

    /// <summary>
    /// HA: this node just won the leadership lock; loads everything from storage (the previous active node may have
    /// changed any of it) before serving, and only then allows writes under <paramref name="epoch"/>. False when
    /// deposed meanwhile, or when the held root key no longer opens the store (restored from another cluster, say):
    /// the node seals itself.
    /// </summary>
    public async Task<bool> PromoteAsync(long epoch, CancellationToken ct)
    {
        await _transition.WaitAsync(ct).ConfigureAwait(false);
        try
        {
            StepDown();
            await _closing.ConfigureAwait(false);

            // A term starts without a rekey attempt: the last one belonged to an earlier term, and the active node
            // since may have rekeyed or stored a pending rekey of its own, which this node's would hide (it reads
            // core/rekey-pending only when it has none) and, completed, overwrite. A stored one is reloaded on demand.
            Interlocked.Exchange(ref _rekey, null)?.Wipe();
            if (Volatile.Read(ref _heldRootKey) is not { } held || Election is { IsActive: false })
            {
                return false;
            }

            // Only now, with the previous term's state drained: a request still running on it would otherwise write
            // its stale view (a keyring from before another node's rotation, say) under this new epoch.
            ((PostgresStorage)_physical).FenceAsLeader(epoch);

            var rootKey = held.ToArray();
            Keyring? keyring = null;
            try
            {
                await LoadAsync(ct).ConfigureAwait(false);
                await CheckRestoredSnapshotAsync(rootKey, ct).ConfigureAwait(false);
                var keyringBytes = await _physical.GetAsync(BarrierStorage.KeyringPath, ct).ConfigureAwait(false)
                    ?? throw new BarrierException("the keyring is missing from storage");
                keyring = BarrierStorage.UnwrapKeyring(rootKey, keyringBytes);
                await RefreshAutoUnsealAsync(rootKey, ct).ConfigureAwait(false);
                var state = await UnsealedState.OpenAsync(_physical, rootKey, keyring, Options, ct).ConfigureAwait(false);
                if (Election is { IsActive: false })
                {
                    // Deposed while loading: never serve. The step-down may have shut the fence before it was opened.
                    ((PostgresStorage)_physical).FenceAsStandby();
                    _closing = state.CloseAsync();
                    return false;
                }

                Volatile.Write(ref _active, state);
                if (Election is { IsActive: false })
                {
                    // Deposed between the check above and now: the step-down may have missed this state (and the fence).
                    ((PostgresStorage)_physical).FenceAsStandby();
                    StepDown();
                    return false;
                }

                return true;
            }
            catch (Exception e) when (e is BarrierException or KmsException)
            {
                CryptographicOperations.ZeroMemory(rootKey);
                keyring?.Zero();
                if (Interlocked.Exchange(ref _heldRootKey, null) is { } forgotten)
                {
                    CryptographicOperations.ZeroMemory(forgotten);
                }

                await (Options.WarningWriter ?? Console.Error).WriteLineAsync($"WARNING! this node sealed itself instead of becoming active: {e.Message}").ConfigureAwait(false);
                return false;
            }
            catch
            {
                CryptographicOperations.ZeroMemory(rootKey);
                keyring?.Zero();
                throw;
            }
        }
        finally
        {
            _transition.Release();
        }
    }

    /// <summary>HA: stops serving now (the lock is gone) and wipes the state once its requests drained; the node stays unsealed.</summary>
    public void StepDown()
    {
        var state = Interlocked.Exchange(ref _active, null);
        if (state is not null)
        {
            _closing = state.CloseAsync();

            // The rekey attempt ends with the term (another node may rekey meanwhile); its shares are wiped as soon
            // as no rekey request holds the transition lock.
            _ = EndStaleRekeyAsync();
        }
    }

    /// <summary>Seals and waits until the keys are wiped.</summary>
    public async Task SealAsync()
    {
        await _transition.WaitAsync().ConfigureAwait(false);
        try
        {
            BeginSeal();
            _progress.Reset();
        }
        finally
        {
            _transition.Release();
        }

        await _closing.ConfigureAwait(false);
    }

    /// <inheritdoc />
    public async ValueTask DisposeAsync()
    {
        await SealAsync().ConfigureAwait(false);
        if (Election is not null)
        {
            await Election.DisposeAsync().ConfigureAwait(false);
        }

        await _physical.DisposeAsync().ConfigureAwait(false);
    }

    /// <summary>
    /// HA: a key derived from the root key an unsealed node holds (<see cref="RootSubkeys"/>) — a standby has no
    /// unsealed state, but the same root key as the active node — or null while sealed. The caller zeroes it.
    /// </summary>
    public byte[]? DeriveFromHeldRootKey(string purpose)
    {
        if (Volatile.Read(ref _heldRootKey) is not { } held)
        {
            return null;
        }

        var key = RootSubkeys.Derive(held, purpose);

        // A held root key is zeroed only after it was swapped out (seal, restore, failed promotion): still held, still whole.
        if (!ReferenceEquals(Volatile.Read(ref _heldRootKey), held))
        {
            CryptographicOperations.ZeroMemory(key);
            return null;
        }

        return key;
    }

    /// <summary>HA: an unsealed node keeps the root key and competes for the lock; its state loads once it wins.</summary>
    private void HoldForLeadership(byte[] rootKey)
    {
        if (Interlocked.Exchange(ref _heldRootKey, rootKey) is { } previous)
        {
            CryptographicOperations.ZeroMemory(previous);
        }

        Election!.Wake();
    }

    private static async Task ForgetAfterAsync(Task closing, byte[] rootKey)
    {
        await closing.ConfigureAwait(false);
        CryptographicOperations.ZeroMemory(rootKey);
    }

    private async Task UnsealWithKeyAsync(byte[] unsealKey, CancellationToken ct)
    {
        await _closing.ConfigureAwait(false);
        var wrapped = await _physical.GetAsync(SealConfig.RootKeyPath, ct).ConfigureAwait(false)
            ?? throw new BarrierException("the root key is missing from storage");
        byte[] rootKey;
        try
        {
            rootKey = AesGcmEnvelope.Open(unsealKey, SealConfig.RootKeyPath, wrapped);
        }
        catch (BarrierException)
        {
            throw KmsException.BadRequest("unseal failed: the key shares do not decrypt the root key; progress was reset");
        }

        if (Election is not null)
        {
            HoldForLeadership(rootKey);
            return;
        }

        await OpenWithoutHaAsync(rootKey, refreshAutoUnseal: true, ct).ConfigureAwait(false);
    }

    /// <summary>
    /// Opens the barrier with a root key just recovered (from shares, or by auto-unseal) on a node without HA. On any
    /// failure the KMS stays sealed and the root key and keyring are wiped: no state owns them, so nothing else would.
    /// </summary>
    private async Task OpenWithoutHaAsync(byte[] rootKey, bool refreshAutoUnseal, CancellationToken ct)
    {
        Keyring? keyring = null;
        try
        {
            await CheckRestoredSnapshotAsync(rootKey, ct).ConfigureAwait(false);
            var keyringBytes = await _physical.GetAsync(BarrierStorage.KeyringPath, ct).ConfigureAwait(false)
                ?? throw new BarrierException("the keyring is missing from storage");
            keyring = BarrierStorage.UnwrapKeyring(rootKey, keyringBytes);
            if (refreshAutoUnseal)
            {
                await RefreshAutoUnsealAsync(rootKey, ct).ConfigureAwait(false);
            }

            var state = await UnsealedState.OpenAsync(_physical, rootKey, keyring, Options, ct).ConfigureAwait(false);
            Volatile.Write(ref _active, state);
        }
        catch
        {
            CryptographicOperations.ZeroMemory(rootKey);
            keyring?.Zero();
            throw;
        }
    }
}

/// <summary>What <c>sys/init</c> returns once.</summary>
/// <param name="Keys">The unseal key shares.</param>
/// <param name="RootToken">The initial root token.</param>
/// <param name="UnsealFailure">Why the unseal that follows init (auto-unseal) failed, leaving the KMS initialised and sealed; else null.</param>
internal sealed record InitResult(IReadOnlyList<byte[]> Keys, string RootToken, Exception? UnsealFailure = null)
{
    // A record's ToString prints every property: the shares and the root token stay out of log lines, exception
    // messages and debugger displays.
    private bool PrintMembers(StringBuilder builder)
    {
        builder.Append("Keys = [redacted], RootToken = [redacted], UnsealFailure = ").Append(UnsealFailure);
        return true;
    }
}
