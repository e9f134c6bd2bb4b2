using System.Security.Cryptography;
using Morphisms.Kms.Barrier;
using Morphisms.Kms.Storage;

namespace Morphisms.Kms.HighAvailability;

/// <summary>
/// Active/standby high availability over PostgreSQL, with Vault's semantics. Every unsealed node tries to take the
/// leadership lock (<see cref="PostgresLeaderLock"/>) about once a second; the holder is the active node and serves
/// everything, the others are standbys that answer <c>sys/health</c>, <c>sys/leader</c>, <c>sys/seal-status</c> and
/// <c>sys/unseal</c> themselves and redirect the rest to the active node's advertised address.
/// </summary>
/// <remarks>
/// A node that becomes active loads its state (keyring, mounts, policies, tokens...) from storage before serving;
/// a node that loses the lock, or cannot prove it still holds it, stops serving at once and drops that state.
/// Writes are fenced by the leader epoch (see <see cref="PostgresStorage"/>), which covers the window before a
/// deposed node notices.
/// </remarks>
internal sealed class LeaderElection : IAsyncDisposable
{
    /// <summary>How often a standby retries the lock and the active node re-checks it.</summary>
    public static readonly TimeSpan Interval = TimeSpan.FromSeconds(1);

    private static readonly TimeSpan InitLockWait = TimeSpan.FromSeconds(10);

    private readonly PostgresStorage _storage;
    private readonly PostgresLeaderLock _lock;
    private readonly KmsCore _core;
    private readonly TimeProvider _time;
    private readonly TextWriter _log;
    private readonly SemaphoreSlim _gate = new(1, 1);
    private readonly CancellationTokenSource _stop = new();
    private readonly SemaphoreSlim _wake = new(0, 1);
    private Task _loop = Task.CompletedTask;
    private string _address = "";
    private LeaderRecord? _leader;
    private long _epoch;
    private long _warnedEpoch = -1;
    private int _active;
    private DateTimeOffset _activeSince;

    public LeaderElection(PostgresStorage storage, KmsCore core, TimeProvider time, TextWriter log)
    {
        _storage = storage;
        _lock = new PostgresLeaderLock(storage, time);
        _core = core;
        _time = time;
        _log = log;

        // Nothing is written until this node has won the lock; a write that finds another node's epoch steps it down.
        storage.FenceAsStandby();
        storage.LeadershipLost += () => _ = Task.Run(() => StepDownAsync("a write found that another node became active"));
    }

    /// <summary>This node's random id (in the leader row while it is active).</summary>
    public string NodeId { get; } = Guid.NewGuid().ToString();

    /// <summary>The advertised API address (<c>--api-addr</c>), once started.</summary>
    public string Address => _address;

    /// <summary>Whether this node holds the leadership lock.</summary>
    public bool IsActive => Volatile.Read(ref _active) == 1;

    /// <summary>When this node last became active.</summary>
    public DateTimeOffset ActiveSince => _activeSince;

    /// <summary>The active node as last seen by this standby (refreshed every <see cref="Interval"/>), or null if none.</summary>
    public LeaderRecord? Leader => Volatile.Read(ref _leader);

    /// <summary>
    /// The active node: this one, the view refreshed every <see cref="Interval"/>, or — for a standby with no view
    /// yet (just unsealed), or one whose lease has run out (the rounds failing) — a fresh read. Null when no node
    /// holds the lock or PostgreSQL cannot be asked.
    /// </summary>
    public async Task<LeaderRecord?> CurrentLeaderAsync(CancellationToken ct)
    {
        if (IsActive)
        {
            return new LeaderRecord(NodeId, new Uri(_address), _activeSince, _epoch);
        }

        if (Leader is { } known && (known.Address is null || _time.GetUtcNow() <= known.LeaseUntil))
        {
            return known;
        }

        await _gate.WaitAsync(ct).ConfigureAwait(false);
        try
        {
            return await RefreshLeaderAsync(ct).ConfigureAwait(false);
        }
        catch (Exception e) when (e is Npgsql.NpgsqlException or IOException or TimeoutException)
        {
            return null;
        }
        finally
        {
            _gate.Release();
        }
    }

    /// <summary>Publishes <paramref name="address"/>, runs one election round (so a lone node is active on return) and starts the loop.</summary>
    /// <exception cref="ArgumentException"><paramref name="address"/> has more than scheme, host and port: standbys would redirect elsewhere than the path asked for.</exception>
    public async Task StartAsync(Uri address, CancellationToken ct)
    {
        if (!LeaderRecord.IsApiAddress(address))
        {
            throw new ArgumentException($"invalid API address '{address}': use http(s)://HOST:PORT", nameof(address));
        }

        _address = address.AbsoluteUri.TrimEnd('/');
        try
        {
            await RoundAsync(ct).ConfigureAwait(false);
        }
        catch (Exception e) when (e is not OperationCanceledException)
        {
            await StepDownAsync($"leadership round failed: {e.GetType().Name}: {e.Message}").ConfigureAwait(false);
        }

        _loop = Task.Run(LoopAsync, CancellationToken.None);
    }

    /// <summary>Runs the next round now instead of at the next tick (after an unseal).</summary>
    public void Wake()
    {
        try
        {
            _wake.Release();
        }
        catch (SemaphoreFullException)
        {
            // A wake-up is already pending.
        }
    }

    /// <summary>
    /// Holds the leadership lock (writes allowed) while <c>sys/init</c> writes, so two nodes initialising the same
    /// empty database cannot both succeed. Waits a bounded time for the lock.
    /// </summary>
    public async Task<IAsyncDisposable> HoldForInitAsync(CancellationToken ct)
    {
        await _gate.WaitAsync(ct).ConfigureAwait(false);
        try
        {
            var deadline = _time.GetUtcNow() + InitLockWait;
            while (true)
            {
                if (await _lock.TryAcquireAsync(NodeId, "", null, ct).ConfigureAwait(false) is { } epoch)
                {
                    _storage.FenceAsLeader(epoch);
                    return new InitHold(this);
                }

                if (_time.GetUtcNow() > deadline)
                {
                    throw new Http.KmsException(503, "another KMS node holds the leadership lock: it is initialised already, or initialising; retry");
                }

                await Task.Delay(TimeSpan.FromMilliseconds(200), _time, ct).ConfigureAwait(false);
            }
        }
        catch
        {
            _gate.Release();
            throw;
        }
    }

    /// <inheritdoc />
    public async ValueTask DisposeAsync()
    {
        await _stop.CancelAsync().ConfigureAwait(false);
        await _loop.ConfigureAwait(false);
        await _gate.WaitAsync().ConfigureAwait(false);
        try
        {
            _storage.FenceAsStandby();
            Volatile.Write(ref _active, 0);
            await _lock.ReleaseAsync().ConfigureAwait(false);
            await _lock.DisposeAsync().ConfigureAwait(false);
        }
        finally
        {
            _gate.Release();
        }
    }

    private async Task LoopAsync()
    {
        while (!_stop.IsCancellationRequested)
        {
            try
            {
                await _wake.WaitAsync(Interval, _stop.Token).ConfigureAwait(false);
                await RoundAsync(_stop.Token).ConfigureAwait(false);
            }
            catch (OperationCanceledException) when (_stop.IsCancellationRequested)
            {
                return;
            }
            catch (Exception e)
            {
                // PostgreSQL unreachable, a failed promotion...: not active until a later round succeeds.
                await StepDownAsync($"leadership round failed: {e.GetType().Name}: {PostgresStorage.Scrub(e.Message, null)}").ConfigureAwait(false);
            }
        }
    }

    private async Task RoundAsync(CancellationToken ct)
    {
        bool promote;
        long epoch = 0;
        await _gate.WaitAsync(ct).ConfigureAwait(false);
        try
        {
            if (IsActive)
            {
                if (!_core.WantsLeadership)
                {
                    // Sealed (or restored): let in-flight requests finish their writes, then hand over.
                    await _core.Closing.ConfigureAwait(false);
                    await GiveUpAsync("this node was sealed").ConfigureAwait(false);
                }
                else if (!await _lock.StillHeldAsync(ct).ConfigureAwait(false))
                {
                    await GiveUpAsync("the leadership lock was lost").ConfigureAwait(false);
                }
                else if (!await RenewLeaseAsync(ct).ConfigureAwait(false))
                {
                    // Rewritten behind this node's back (an earlier term's row written back, say): a new term rewrites it.
                    await GiveUpAsync("the leader row in storage no longer carries this node's term").ConfigureAwait(false);
                }

                return;
            }

            if (_core.Serving)
            {
                // A promotion that finished just after a step-down: never serve without the lock.
                _core.StepDown();
            }

            if (!_core.WantsLeadership)
            {
                // Sealed: keep seal-status and health current with the shared store (another node may have run init).
                Volatile.Write(ref _leader, null);
                await _core.LoadAsync(ct).ConfigureAwait(false);
                return;
            }

            long? won;
            var macKey = _core.DeriveFromHeldRootKey(RootSubkeys.HaLeader);
            try
            {
                won = await _lock.TryAcquireAsync(NodeId, _address, macKey, ct).ConfigureAwait(false);
            }
            finally
            {
                if (macKey is not null)
                {
                    CryptographicOperations.ZeroMemory(macKey);
                }
            }

            if (won is { } term)
            {
                // The fence stays shut until the promotion has drained the previous term's state (KmsCore.PromoteAsync).
                epoch = term;
                _epoch = term;
                _activeSince = _time.GetUtcNow();
                Volatile.Write(ref _leader, new LeaderRecord(NodeId, new Uri(_address), _activeSince, term));
                Volatile.Write(ref _active, 1);
                promote = true;
            }
            else
            {
                await RefreshLeaderAsync(ct).ConfigureAwait(false);
                promote = false;
            }
        }
        finally
        {
            _gate.Release();
        }

        // Outside the gate: loading state takes the core's transition lock, which sys/init holds while it waits for the gate.
        if (promote)
        {
            if (await _core.PromoteAsync(epoch, ct).ConfigureAwait(false))
            {
                await _log.WriteLineAsync($"KMS HA: this node ({_address}) is now the active node").ConfigureAwait(false);
            }
            else
            {
                await StepDownAsync("this node could not load its state").ConfigureAwait(false);
            }
        }
    }

    /// <summary>
    /// Renews the lease on this active node's published address when due (under the gate), so standbys keep
    /// redirecting to it; false when the leader row no longer carries this node's epoch.
    /// </summary>
    private async Task<bool> RenewLeaseAsync(CancellationToken ct)
    {
        // Null only while a seal swaps the root key out: the next round hands the lock over.
        if (_core.DeriveFromHeldRootKey(RootSubkeys.HaLeader) is not { } macKey)
        {
            return true;
        }

        try
        {
            return await _lock.RenewAsync(NodeId, _address, _epoch, macKey, ct).ConfigureAwait(false);
        }
        finally
        {
            CryptographicOperations.ZeroMemory(macKey);
        }
    }

    /// <summary>
    /// Reads the active node (under the gate) as a standby sees it: its address authenticated with the key derived
    /// from this node's root key, and fresh. Warns once per term whose address is refused, since then this node
    /// answers 503.
    /// </summary>
    private async Task<LeaderRecord?> RefreshLeaderAsync(CancellationToken ct)
    {
        var macKey = _core.DeriveFromHeldRootKey(RootSubkeys.HaLeader);
        LeaderRecord? leader;
        try
        {
            leader = await _lock.ReadLeaderAsync(macKey, ct).ConfigureAwait(false);
        }
        finally
        {
            if (macKey is not null)
            {
                CryptographicOperations.ZeroMemory(macKey);
            }
        }

        Volatile.Write(ref _leader, leader);
        if (leader is { Address: null } && macKey is not null && leader.Epoch != _warnedEpoch)
        {
            // Only the epoch is quoted: node_id and api_addr are whatever the database holds, newlines included.
            _warnedEpoch = leader.Epoch;
            await _log.WriteLineAsync(
                $"WARNING! KMS HA: the active node's address in storage {leader.Refusal} (leader epoch {leader.Epoch}): this standby answers 503 instead of redirecting. "
                + "The kms_ha_leader row was altered, or an earlier one written back, by someone with write access to the database; or written by a KMS version without this check "
                + "(a node rewrites it when it next becomes active); or the active node stopped renewing its lease, or its clock is behind this node's by more than the lease allows.").ConfigureAwait(false);
        }
        else if (leader is { Address: not null })
        {
            _warnedEpoch = -1;
        }

        return leader;
    }

    private async Task StepDownAsync(string why)
    {
        // Fence and stop serving first, without waiting for the gate: a deposed node must stop at once.
        _storage.FenceAsStandby();
        var wasActive = Interlocked.Exchange(ref _active, 0) == 1;
        _core.StepDown();
        await _gate.WaitAsync().ConfigureAwait(false);
        try
        {
            // A round may have won the lock again (a new term) while this waited: that one is not ours to give up.
            if (!IsActive)
            {
                await _lock.ReleaseAsync().ConfigureAwait(false);
            }
        }
        finally
        {
            _gate.Release();
        }

        if (wasActive)
        {
            await _log.WriteLineAsync($"KMS HA: this node stepped down: {why}").ConfigureAwait(false);
        }
    }

    private async Task GiveUpAsync(string why)
    {
        _storage.FenceAsStandby();
        Volatile.Write(ref _active, 0);
        _core.StepDown();
        await _lock.ReleaseAsync().ConfigureAwait(false);
        await _log.WriteLineAsync($"KMS HA: this node is no longer active: {why}").ConfigureAwait(false);
    }

    private sealed class InitHold(LeaderElection election) : IAsyncDisposable
    {
        public async ValueTask DisposeAsync()
        {
            election._storage.FenceAsStandby();
            try
            {
                await election._lock.ReleaseAsync().ConfigureAwait(false);
            }
            finally
            {
                election._gate.Release();
            }
        }
    }
}
