using System.Globalization;
using Npgsql;
using Morphisms.Kms.Storage;

namespace Morphisms.Kms.HighAvailability;

/// <summary>
/// The leadership lock: a session-level <c>pg_try_advisory_lock</c> held on one dedicated, unpooled connection.
/// PostgreSQL releases it the moment that session ends — the process died (its socket closed), the connection
/// broke, or keepalives found the client gone — so the lock is exactly "this node's session is alive".
/// Not thread-safe: <see cref="LeaderElection"/> serialises every call.
/// </summary>
/// <remarks>
/// The leader row it publishes and reads is untrusted storage, so a row is used only when it is authenticated and
/// fresh: its MAC verifies, its lease (which the active node renews every <see cref="LeaseRenewal"/>) has not
/// expired by this node's clock (<paramref name="time"/>), and it is not from an earlier term than the last row this
/// node won, renewed or accepted: a lower epoch with a lease no later than that row's. Without the last two, whoever
/// controls PostgreSQL could write an earlier term's row back — say a decommissioned node's, whose address someone
/// else now holds — and standbys would redirect clients there. A lower epoch with a later lease is not refused:
/// PostgreSQL itself went back to an earlier state (restored from a backup, a lagging replica promoted), the epoch
/// with it, and the row is the next term's; refused, standbys would answer 503 until restarted.
/// </remarks>
internal sealed class PostgresLeaderLock(PostgresStorage storage, TimeProvider time) : IAsyncDisposable
{
    /// <summary>How long one check of the lock may take before the node gives up being active.</summary>
    public static readonly TimeSpan CheckTimeout = TimeSpan.FromSeconds(3);

    /// <summary>
    /// How long a published address stays usable after the active node wrote it: the replay window of a row written
    /// back to a node that has seen no later term, plus however far that node's clock lags the active node's.
    /// </summary>
    public static readonly TimeSpan Lease = TimeSpan.FromSeconds(15);

    /// <summary>
    /// How often the active node renews its lease (a third of it, as Vault's PostgreSQL lock), on the first round once
    /// due: the row in storage keeps at least <see cref="Lease"/> minus this and a round (about 9 s) to run, which is
    /// how far ahead of the active node's a standby's clock may be before it refuses even a fresh row.
    /// </summary>
    public static readonly TimeSpan LeaseRenewal = TimeSpan.FromSeconds(5);

    // pg_locks shows a bigint advisory key as two oids: the high and the low 32 bits (objsubid 1).
    private static readonly string LockFilter = string.Create(
        CultureInfo.InvariantCulture,
        $"locktype = 'advisory' AND classid = {(uint)(PostgresStorage.LeaderLockKey >> 32)} AND objid = {PostgresStorage.LeaderLockKey & 0xFFFF_FFFF} AND objsubid = 1 AND granted AND database = (SELECT oid FROM pg_database WHERE datname = current_database())");

    private NpgsqlConnection? _session;

    // The highest epoch this node has won or accepted from an authenticated, unexpired row: a new term rises above it,
    // so epochs are not reused after PostgreSQL went back to an earlier state (a deposed node's fence may hold them).
    private long _highestEpoch;

    // The row this node last won, renewed or accepted: its epoch and lease. A lower epoch whose lease is no later is an
    // earlier term's row written back; a later lease was written after it (a new term after a rollback).
    private long _seenEpoch;
    private DateTimeOffset _seenLease = DateTimeOffset.MinValue;
    private DateTimeOffset _renewAt = DateTimeOffset.MinValue;

    /// <summary>Whether this session holds the lock (as far as this side knows).</summary>
    public bool Held { get; private set; }

    /// <summary>
    /// Takes the lock if free and, holding it, bumps the leader epoch and publishes <paramref name="address"/> with a
    /// lease, authenticated under <paramref name="macKey"/> (<see cref="LeaderRecord.Mac"/>; none without a key, as
    /// for init's empty address). Returns the new epoch, or null when another session holds the lock.
    /// </summary>
    public async Task<long?> TryAcquireAsync(string nodeId, string address, byte[]? macKey, CancellationToken ct)
    {
        var session = await SessionAsync(ct).ConfigureAwait(false);

        // Advisory locks stack: taking it again while held would need two unlocks, and one release would keep it.
        if (!Held)
        {
            await using var take = new NpgsqlCommand($"SELECT pg_try_advisory_lock({PostgresStorage.LeaderLockKey})", session);
            if (await take.ExecuteScalarAsync(ct).ConfigureAwait(false) is not true)
            {
                return null;
            }

            Held = true;
        }

        // FOR UPDATE waits for the previous active node's in-flight write transactions (they hold the row FOR KEY
        // SHARE, which only FOR UPDATE conflicts with: the UPDATE alone, changing no key column, would not wait) and
        // makes all its later ones wait and then fail their epoch check: see PostgresStorage.TransactAsync. The MAC
        // covers the new epoch, known only once bumped; one transaction, so a standby never reads the row without
        // its MAC. The epoch rises above any this node has seen: after the epoch went back (a row written back, a
        // database restored), the new term would otherwise reuse an epoch a deposed node may still hold as its fence.
        await using var tx = await session.BeginTransactionAsync(ct).ConfigureAwait(false);
        await using (var fence = new NpgsqlCommand("SELECT epoch FROM kms_ha_leader WHERE id = 1 FOR UPDATE", session, tx))
        {
            await fence.ExecuteNonQueryAsync(ct).ConfigureAwait(false);
        }

        long epoch;
        await using (var bump = new NpgsqlCommand(
            "UPDATE kms_ha_leader SET epoch = GREATEST(epoch, $3) + 1, node_id = $1, api_addr = $2, api_addr_mac = NULL, lease_until = NULL, active_since = now() WHERE id = 1 RETURNING epoch",
            session,
            tx))
        {
            bump.Parameters.Add(new NpgsqlParameter { Value = nodeId });
            bump.Parameters.Add(new NpgsqlParameter { Value = address });
            bump.Parameters.Add(new NpgsqlParameter { Value = _highestEpoch });
            epoch = (long)(await bump.ExecuteScalarAsync(ct).ConfigureAwait(false))!;
        }

        var signed = macKey is null ? null : await SignAsync(session, tx, nodeId, address, epoch, macKey, ct).ConfigureAwait(false);
        await tx.CommitAsync(ct).ConfigureAwait(false);
        _highestEpoch = Math.Max(_highestEpoch, epoch);
        _renewAt = signed?.RenewAt ?? DateTimeOffset.MinValue;
        if (signed is { } published)
        {
            Saw(epoch, published.Lease);
        }

        return epoch;
    }

    /// <summary>
    /// Renews the lease on the address this node published for <paramref name="epoch"/>, once
    /// <see cref="LeaseRenewal"/> has passed since it last wrote it. False when the row no longer carries that epoch:
    /// it was rewritten behind this node's back (the writes of its term fail their fence check as well).
    /// </summary>
    public async Task<bool> RenewAsync(string nodeId, string address, long epoch, byte[] macKey, CancellationToken ct)
    {
        if (time.GetUtcNow() < _renewAt)
        {
            return true;
        }

        var session = await SessionAsync(ct).ConfigureAwait(false);
        if (await SignAsync(session, null, nodeId, address, epoch, macKey, ct).ConfigureAwait(false) is not { } signed)
        {
            return false;
        }

        _renewAt = signed.RenewAt;
        Saw(epoch, signed.Lease);
        return true;
    }

    /// <summary>Whether the session is alive and still holds the lock; false (and the session dropped) on any failure.</summary>
    public async Task<bool> StillHeldAsync(CancellationToken ct)
    {
        if (_session is null || !Held)
        {
            return false;
        }

        using var timeout = CancellationTokenSource.CreateLinkedTokenSource(ct);
        timeout.CancelAfter(CheckTimeout);
        try
        {
            await using var check = new NpgsqlCommand($"SELECT EXISTS (SELECT 1 FROM pg_locks WHERE pid = pg_backend_pid() AND {LockFilter})", _session);
            if (await check.ExecuteScalarAsync(timeout.Token).ConfigureAwait(false) is true)
            {
                return true;
            }
        }
        catch (Exception e) when (e is NpgsqlException or OperationCanceledException or InvalidOperationException or IOException or TimeoutException)
        {
            // Unreachable or broken: unable to prove the lock is ours, so it is not.
        }

        await DropSessionAsync().ConfigureAwait(false);
        return false;
    }

    /// <summary>Gives the lock up (by unlocking, or by ending the session if that fails).</summary>
    public async Task ReleaseAsync()
    {
        if (_session is null || !Held)
        {
            return;
        }

        Held = false;
        try
        {
            using var timeout = new CancellationTokenSource(CheckTimeout);
            await using var unlock = new NpgsqlCommand($"SELECT pg_advisory_unlock({PostgresStorage.LeaderLockKey})", _session);
            await unlock.ExecuteNonQueryAsync(timeout.Token).ConfigureAwait(false);
        }
        catch (Exception e) when (e is NpgsqlException or OperationCanceledException or InvalidOperationException or IOException or TimeoutException)
        {
            await DropSessionAsync().ConfigureAwait(false);
        }
    }

    /// <summary>
    /// The active node, or null when no session holds the lock right now (or it published no address: init). Its
    /// address is null unless it authenticates under <paramref name="macKey"/> (<see cref="LeaderRecord.Authenticate"/>)
    /// and is fresh: its lease has not expired and it is not from an earlier term than the last row this node saw (a
    /// lower epoch with a lease no later than that row's).
    /// </summary>
    public async Task<LeaderRecord?> ReadLeaderAsync(byte[]? macKey, CancellationToken ct)
    {
        var session = await SessionAsync(ct).ConfigureAwait(false);
        await using var read = new NpgsqlCommand(
            $"SELECT epoch, node_id, api_addr, api_addr_mac, active_since, lease_until FROM kms_ha_leader WHERE id = 1 AND EXISTS (SELECT 1 FROM pg_locks WHERE {LockFilter})",
            session);
        await using var reader = await read.ExecuteReaderAsync(ct).ConfigureAwait(false);
        if (!await reader.ReadAsync(ct).ConfigureAwait(false) || reader.IsDBNull(4) || reader.GetString(2).Length == 0)
        {
            return null;
        }

        // api_addr is untrusted storage: only the active node, which holds the root key, can write a MAC that verifies.
        var (epoch, nodeId, stored) = (reader.GetInt64(0), reader.GetString(1), reader.GetString(2));
        var mac = reader.IsDBNull(3) ? null : reader.GetFieldValue<byte[]>(3);
        DateTimeOffset? lease = reader.IsDBNull(5) ? null : reader.GetFieldValue<DateTimeOffset>(5);
        var address = macKey is null ? null : LeaderRecord.Authenticate(macKey, epoch, nodeId, stored, lease, mac);
        var leader = new LeaderRecord(nodeId, address, reader.GetFieldValue<DateTimeOffset>(4), epoch) { LeaseUntil = lease ?? DateTimeOffset.MinValue };
        if (address is null)
        {
            return leader with { Refusal = "failed authentication" };
        }

        // Authentic is not enough: the MAC has no notion of time, and whoever controls PostgreSQL can write back an
        // earlier term's row (kept, MAC and all). A node that saw a later term refuses it at once; any other (just
        // started) once its lease has run out. Its lease tells it from a new term's row of a lower epoch (PostgreSQL
        // rolled back, the epoch with it): that one's lease was written after every lease of the terms before.
        if (epoch < _seenEpoch && leader.LeaseUntil <= _seenLease)
        {
            return leader with { Address = null, Refusal = $"is from an earlier leader term than epoch {_seenEpoch}, which this node has seen" };
        }

        if (time.GetUtcNow() > leader.LeaseUntil)
        {
            return leader with { Address = null, Refusal = $"has a lease that expired at {leader.LeaseUntil:O} by this node's clock" };
        }

        _highestEpoch = Math.Max(_highestEpoch, epoch);
        Saw(epoch, leader.LeaseUntil);
        return leader;
    }

    /// <inheritdoc />
    public ValueTask DisposeAsync() => DropSessionAsync();

    /// <summary>
    /// Writes a new lease on the row of <paramref name="epoch"/> and the MAC over it (whole milliseconds, as the MAC
    /// encodes them). Returns the lease and when to renew it, or null when the row carries another epoch.
    /// </summary>
    /// <remarks>
    /// It sets no key column (the table's only unique index is its primary key, <c>id</c>), so its row lock is
    /// <c>FOR NO KEY UPDATE</c>, which the fenced writes' <c>FOR KEY SHARE</c> does not block. Under a share lock
    /// the renewal would wait for them, and new share lockers do not queue behind a waiting updater: a stream of
    /// overlapping writes could hold it past the session's <c>statement_timeout</c> and step the node down.
    /// </remarks>
    private async Task<(DateTimeOffset Lease, DateTimeOffset RenewAt)?> SignAsync(NpgsqlConnection session, NpgsqlTransaction? tx, string nodeId, string address, long epoch, byte[] macKey, CancellationToken ct)
    {
        var now = time.GetUtcNow();
        var lease = DateTimeOffset.FromUnixTimeMilliseconds((now + Lease).ToUnixTimeMilliseconds());
        await using var sign = new NpgsqlCommand("UPDATE kms_ha_leader SET lease_until = $1, api_addr_mac = $2 WHERE id = 1 AND epoch = $3", session, tx);
        sign.Parameters.Add(new NpgsqlParameter { Value = lease });
        sign.Parameters.Add(new NpgsqlParameter { NpgsqlDbType = NpgsqlTypes.NpgsqlDbType.Bytea, Value = LeaderRecord.Mac(macKey, epoch, nodeId, address, lease) });
        sign.Parameters.Add(new NpgsqlParameter { Value = epoch });
        return await sign.ExecuteNonQueryAsync(ct).ConfigureAwait(false) == 1 ? (lease, now + LeaseRenewal) : null;
    }

    /// <summary>
    /// Remembers the row of <paramref name="epoch"/> with <paramref name="lease"/> as the last this node saw: the
    /// latest lease of its epoch, or the row of another epoch it won or accepted (a lower one only with a later lease).
    /// </summary>
    private void Saw(long epoch, DateTimeOffset lease)
    {
        _seenLease = epoch == _seenEpoch && lease < _seenLease ? _seenLease : lease;
        _seenEpoch = epoch;
    }

    private async Task<NpgsqlConnection> SessionAsync(CancellationToken ct)
    {
        if (_session is { State: System.Data.ConnectionState.Open } open)
        {
            return open;
        }

        await DropSessionAsync().ConfigureAwait(false);
        var session = await storage.SessionSource.OpenConnectionAsync(ct).ConfigureAwait(false);
        try
        {
            // The server drops a vanished client (and so its lock) within about 10 s instead of the OS's two hours.
            // On a Unix socket these settings are accepted and ignored: there a dead process closes the socket at once.
            await using var settings = new NpgsqlCommand(
                "SET tcp_keepalives_idle = 3; SET tcp_keepalives_interval = 1; SET tcp_keepalives_count = 3; SET tcp_user_timeout = 10000; SET statement_timeout = 5000",
                session);
            await settings.ExecuteNonQueryAsync(ct).ConfigureAwait(false);
        }
        catch
        {
            await session.DisposeAsync().ConfigureAwait(false);
            throw;
        }

        _session = session;
        return session;
    }

    private async ValueTask DropSessionAsync()
    {
        Held = false;
        if (Interlocked.Exchange(ref _session, null) is { } session)
        {
            try
            {
                await session.DisposeAsync().ConfigureAwait(false);
            }
            catch (Exception e) when (e is NpgsqlException or IOException or InvalidOperationException)
            {
                // Already broken; the server ends the session (and the lock) on its side.
            }
        }
    }
}
