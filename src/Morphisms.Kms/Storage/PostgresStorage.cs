using Npgsql;
using NpgsqlTypes;

namespace Morphisms.Kms.Storage;

/// <summary>
/// PostgreSQL storage, shared by several KMS nodes (one active, the others standby; see
/// <see cref="HighAvailability.LeaderElection"/>). One table of barrier ciphertexts keyed by path in the <c>"C"</c>
/// collation, so range scans and ordering are by code point exactly as in SQLite. PostgreSQL's default
/// <c>synchronous_commit=on</c> makes an acknowledged commit durable. Connections come from an Npgsql pool; the
/// leadership lock has its own unpooled session.
/// </summary>
/// <remarks>
/// Writes can be fenced: once the HA layer installs a leader epoch, every write transaction also locks the
/// leader row (<c>FOR KEY SHARE</c>) and checks that the epoch is still this node's. A new active node locks that row
/// <c>FOR UPDATE</c> and bumps the epoch, which waits for the old node's in-flight writes and makes every later one
/// fail, so no write of a deposed node can commit after its successor has loaded its state. The active node's lease
/// renewal (a non-key <c>UPDATE</c>) conflicts with neither, so writes never hold it up.
/// </remarks>
public sealed class PostgresStorage : IPhysicalStorage
{
    /// <summary>The environment variable <c>--storage postgres</c> reads the Npgsql connection string from.</summary>
    public const string ConnectionStringVariable = "MORPHISMS_KMS_PG";

    /// <summary>The advisory lock key of the active node (session lock on the leadership connection).</summary>
    internal const long LeaderLockKey = 0x6D6F_7270_686B_6D73; // "morphkms"

    /// <summary>Serialises schema creation across nodes starting together (CREATE TABLE IF NOT EXISTS races otherwise).</summary>
    private const long SchemaLockKey = LeaderLockKey + 1;

    private const long Unfenced = long.MinValue;
    private const long NotLeader = -1;

    private readonly NpgsqlDataSource _pool;
    private long _fenceEpoch = Unfenced;

    private PostgresStorage(NpgsqlDataSource pool, NpgsqlDataSource session, string description)
    {
        _pool = pool;
        SessionSource = session;
        Description = description;
    }

    /// <summary>Host, port, database and user: what errors may name (never the password).</summary>
    public string Description { get; }

    /// <summary>The pooled connections every read and write uses.</summary>
    internal NpgsqlDataSource Pool => _pool;

    /// <summary>Unpooled connections for long-lived sessions (the leadership lock).</summary>
    internal NpgsqlDataSource SessionSource { get; }

    /// <summary>Raised when a write found that another node became active since this one did.</summary>
    internal event Action? LeadershipLost;

    /// <summary>Opens the database named by <paramref name="connectionString"/> and creates the schema if needed.</summary>
    /// <exception cref="ArgumentException">The connection string is malformed.</exception>
    /// <exception cref="IOException">The server cannot be reached, refuses the login, or the database is not UTF-8.</exception>
    public static PostgresStorage Open(string connectionString)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(connectionString);
        NpgsqlConnectionStringBuilder settings;
        try
        {
            settings = new NpgsqlConnectionStringBuilder(connectionString);
        }
        catch (Exception e) when (e is ArgumentException or FormatException)
        {
            // The parser's messages name keywords, not values; drop the inner exception, which may quote a value.
            throw new ArgumentException($"invalid PostgreSQL connection string: {Scrub(e.Message, connectionString)}");
        }

        settings.ApplicationName ??= "morphisms-kms";
        var password = settings.Password;
        var description = $"host {settings.Host ?? "localhost"} port {settings.Port} database {settings.Database ?? settings.Username ?? "(default)"} user {settings.Username ?? "(default)"}";
        var pooled = new NpgsqlConnectionStringBuilder(settings.ConnectionString)
        {
            // A write holds the leader row FOR KEY SHARE until its COMMIT, so a node whose host vanishes between the
            // two would block its successor's takeover (FOR UPDATE) until TCP keepalive ends the session (two hours by default).
            // A write is idle in its transaction for one round trip at most; the server ends it after 10 s instead.
            // A startup option, not a SET: Npgsql's reset of a pooled connection (DISCARD ALL) would undo a SET.
            // Settings the user gave come after these, so theirs win. A pooler in front of PostgreSQL must accept the
            // `options` startup parameter (PgBouncer refuses it by default); docs/operations.md says so.
            Options = ("-c idle_in_transaction_session_timeout=10000 " + settings.Options).TrimEnd(),
        };
        var pool = new NpgsqlDataSourceBuilder(pooled.ConnectionString).Build();
        var session = new NpgsqlConnectionStringBuilder(settings.ConnectionString)
        {
            Pooling = false,
            ApplicationName = settings.ApplicationName + "-leader",

            // Keepalive queries from this side notice a dead server; the server-side settings applied by the
            // election notice a dead client, releasing its lock.
            KeepAlive = 5,
        };
        var sessionSource = new NpgsqlDataSourceBuilder(session.ConnectionString).Build();
        var storage = new PostgresStorage(pool, sessionSource, description);
        try
        {
            storage.CreateSchema();
            return storage;
        }
        catch (Exception e) when (e is NpgsqlException or InvalidOperationException or TimeoutException)
        {
            pool.Dispose();
            sessionSource.Dispose();
            throw new IOException($"cannot open the PostgreSQL storage ({description}): {Scrub(e.Message, password)}");
        }
    }

    /// <inheritdoc />
    public async Task<byte[]?> GetAsync(string key, CancellationToken cancellationToken = default)
    {
        await using var cmd = _pool.CreateCommand("SELECT value FROM kms_entries WHERE key = $1");
        cmd.Parameters.Add(new NpgsqlParameter { NpgsqlDbType = NpgsqlDbType.Text, Value = key });
        return await cmd.ExecuteScalarAsync(cancellationToken).ConfigureAwait(false) as byte[];
    }

    /// <inheritdoc />
    public Task PutAsync(string key, ReadOnlyMemory<byte> value, CancellationToken cancellationToken = default) =>
        TransactAsync([StorageOperation.Put(key, value)], cancellationToken);

    /// <inheritdoc />
    public Task DeleteAsync(string key, CancellationToken cancellationToken = default) =>
        TransactAsync([StorageOperation.Delete(key)], cancellationToken);

    /// <inheritdoc />
    public async Task<IReadOnlyList<string>> ListAsync(string prefix, CancellationToken cancellationToken = default)
    {
        var upper = StorageKeys.PrefixUpperBound(prefix);
        await using var cmd = _pool.CreateCommand(upper is null
            ? "SELECT key FROM kms_entries WHERE key >= $1"
            : "SELECT key FROM kms_entries WHERE key >= $1 AND key < $2");
        cmd.Parameters.Add(new NpgsqlParameter { NpgsqlDbType = NpgsqlDbType.Text, Value = prefix });
        if (upper is not null)
        {
            cmd.Parameters.Add(new NpgsqlParameter { NpgsqlDbType = NpgsqlDbType.Text, Value = upper });
        }

        var keys = new List<string>();
        await using (var reader = await cmd.ExecuteReaderAsync(cancellationToken).ConfigureAwait(false))
        {
            while (await reader.ReadAsync(cancellationToken).ConfigureAwait(false))
            {
                var key = reader.GetString(0);
                if (key.StartsWith(prefix, StringComparison.Ordinal))
                {
                    keys.Add(key);
                }
            }
        }

        return StorageKeys.ImmediateChildren(prefix, keys);
    }

    /// <inheritdoc />
    public async Task<IReadOnlyList<KeyValuePair<string, byte[]>>> ReadAllAsync(CancellationToken cancellationToken = default)
    {
        // One statement sees one snapshot, so a backup never mixes before and after a transaction.
        await using var cmd = _pool.CreateCommand("SELECT key, value FROM kms_entries");
        var result = new List<KeyValuePair<string, byte[]>>();
        await using (var reader = await cmd.ExecuteReaderAsync(cancellationToken).ConfigureAwait(false))
        {
            while (await reader.ReadAsync(cancellationToken).ConfigureAwait(false))
            {
                result.Add(new(reader.GetString(0), reader.GetFieldValue<byte[]>(1)));
            }
        }

        result.Sort((a, b) => string.CompareOrdinal(a.Key, b.Key));
        return result;
    }

    /// <inheritdoc />
    /// <exception cref="HighAvailability.StandbyWriteException">This node is not (or no longer) the active node.</exception>
    public async Task TransactAsync(IReadOnlyList<StorageOperation> operations, CancellationToken cancellationToken = default)
    {
        if (operations.Count == 0)
        {
            return;
        }

        var fence = Volatile.Read(ref _fenceEpoch);
        if (fence == NotLeader)
        {
            throw new HighAvailability.StandbyWriteException();
        }

        await using var connection = await _pool.OpenConnectionAsync(cancellationToken).ConfigureAwait(false);
        await using var tx = await connection.BeginTransactionAsync(cancellationToken).ConfigureAwait(false);

        // One round trip: every write, then the fence check, whose answer decides commit or rollback. The check comes
        // last: the server runs each command as it arrives, and a batch larger than a network write arrives in pieces,
        // so a check sent first would hold the leader row while the rest is still on its way, where no idle timeout
        // applies (a host that died mid-batch would block the successor until TCP keepalive gave up).
        await using var batch = new NpgsqlBatch(connection, tx);
        foreach (var op in operations)
        {
            var command = new NpgsqlBatchCommand(op.Value is null
                ? "DELETE FROM kms_entries WHERE key = $1"
                : "INSERT INTO kms_entries(key, value) VALUES ($1, $2) ON CONFLICT (key) DO UPDATE SET value = excluded.value");
            command.Parameters.Add(new NpgsqlParameter { NpgsqlDbType = NpgsqlDbType.Text, Value = op.Key });
            if (op.Value is { } value)
            {
                command.Parameters.Add(new NpgsqlParameter<ReadOnlyMemory<byte>> { NpgsqlDbType = NpgsqlDbType.Bytea, TypedValue = value });
            }

            batch.BatchCommands.Add(command);
        }

        if (fence != Unfenced)
        {
            // KEY SHARE, the weakest row lock: only the takeover's FOR UPDATE conflicts with it (so the epoch cannot
            // change until this commits), not the active node's lease renewal, a non-key UPDATE. Share lockers do not
            // queue behind a waiting updater, so under the overlapping writes of hundreds of logins a second a
            // renewal that had to wait for them could wait out its statement timeout and step the node down.
            batch.BatchCommands.Add(new NpgsqlBatchCommand("SELECT epoch FROM kms_ha_leader WHERE id = 1 FOR KEY SHARE"));
        }

        long? current = null;
        await using (var reader = await batch.ExecuteReaderAsync(cancellationToken).ConfigureAwait(false))
        {
            // Every statement must have run before the commit; only the fence check returns a row.
            do
            {
                if (reader.FieldCount == 1 && await reader.ReadAsync(cancellationToken).ConfigureAwait(false))
                {
                    current = reader.GetInt64(0);
                }
            }
            while (await reader.NextResultAsync(cancellationToken).ConfigureAwait(false));
        }

        if (fence != Unfenced && current != fence)
        {
            await tx.RollbackAsync(CancellationToken.None).ConfigureAwait(false);

            // Step down only if the fence is still the term this write ran in: the node may have won a newer one
            // since (whose epoch this write found), and that term is not this write's to end.
            if (Interlocked.CompareExchange(ref _fenceEpoch, NotLeader, fence) == fence)
            {
                LeadershipLost?.Invoke();
            }

            throw new HighAvailability.StandbyWriteException();
        }

        // Cancellation is not observed past this point: a commit either happens fully or not at all.
        await tx.CommitAsync(CancellationToken.None).ConfigureAwait(false);
    }

    /// <summary>Writes are allowed while the leader row carries <paramref name="epoch"/> (this node's term as active node).</summary>
    internal void FenceAsLeader(long epoch) => Volatile.Write(ref _fenceEpoch, epoch);

    /// <summary>Every write fails at once: this node is a standby (or sealed, or stepping down).</summary>
    internal void FenceAsStandby() => Volatile.Write(ref _fenceEpoch, NotLeader);

    /// <inheritdoc />
    public async ValueTask DisposeAsync()
    {
        await _pool.DisposeAsync().ConfigureAwait(false);
        await SessionSource.DisposeAsync().ConfigureAwait(false);
    }

    /// <summary>Replaces the password, should a message ever quote it, with <c>***</c>.</summary>
    internal static string Scrub(string message, string? secret) =>
        string.IsNullOrEmpty(secret) ? message : message.Replace(secret, "***", StringComparison.Ordinal);

    private void CreateSchema()
    {
        using var connection = _pool.OpenConnection();
        using (var encoding = new NpgsqlCommand("SHOW server_encoding", connection))
        {
            if (encoding.ExecuteScalar() is not "UTF8")
            {
                throw new InvalidOperationException("the database must use the UTF8 encoding (CREATE DATABASE ... ENCODING 'UTF8')");
            }
        }

        // api_addr_mac and lease_until came later: a database from before gets the columns (its row has no MAC, or
        // one without a lease, so standbys answer 503 until a node of this version next becomes active and writes
        // one). Added only if missing: ALTER TABLE locks the table exclusively, which would queue the active node's
        // fence checks behind every node's start.
        using var tx = connection.BeginTransaction();
        using var cmd = new NpgsqlCommand(
            $"""
            SELECT pg_advisory_xact_lock({SchemaLockKey});
            CREATE TABLE IF NOT EXISTS kms_entries (key text COLLATE "C" PRIMARY KEY, value bytea NOT NULL);
            CREATE TABLE IF NOT EXISTS kms_ha_leader (
                id int PRIMARY KEY CHECK (id = 1),
                epoch bigint NOT NULL,
                node_id text NOT NULL,
                api_addr text NOT NULL,
                active_since timestamptz,
                api_addr_mac bytea,
                lease_until timestamptz);
            INSERT INTO kms_ha_leader (id, epoch, node_id, api_addr) VALUES (1, 0, '', '') ON CONFLICT (id) DO NOTHING;
            DO $$ BEGIN
                IF NOT EXISTS (SELECT 1 FROM pg_attribute WHERE attrelid = 'kms_ha_leader'::regclass AND attname = 'api_addr_mac' AND NOT attisdropped) THEN
                    ALTER TABLE kms_ha_leader ADD COLUMN api_addr_mac bytea;
                END IF;
                IF NOT EXISTS (SELECT 1 FROM pg_attribute WHERE attrelid = 'kms_ha_leader'::regclass AND attname = 'lease_until' AND NOT attisdropped) THEN
                    ALTER TABLE kms_ha_leader ADD COLUMN lease_until timestamptz;
                END IF;
            END $$;
            """,
            connection,
            tx);
        cmd.ExecuteNonQuery();
        tx.Commit();
    }
}
