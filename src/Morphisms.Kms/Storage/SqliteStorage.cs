using System.Collections.Concurrent;
using Microsoft.Data.Sqlite;

namespace Morphisms.Kms.Storage;

/// <summary>
/// Embedded SQLite storage. WAL journal with <c>synchronous=FULL</c> makes every acknowledged commit reach the
/// disk before the call returns, so it survives <c>kill -9</c> and power loss. Writes go through one writer
/// connection with group commit (<see cref="GroupCommit{T}"/>): transactions arriving while a commit's fsync runs
/// are committed together by the next one, each in its own savepoint, so concurrent writers share an fsync
/// without one failing transaction undoing another. Reads use a small pool of separate connections: under WAL
/// they see the last committed state and neither wait for nor block the writer. The log is copied back into the
/// database file by a <see cref="WalCheckpointer"/> of its own, not by the commits.
/// </summary>
public sealed class SqliteStorage : IPhysicalStorage
{
    private const string PutSql = "INSERT INTO kms_entries(key, value) VALUES($k, $v) ON CONFLICT(key) DO UPDATE SET value = excluded.value";
    private const string DeleteSql = "DELETE FROM kms_entries WHERE key = $k";

    private readonly string _connectionString;
    private readonly SqliteConnection _writer;
    private readonly GroupCommit<IReadOnlyList<StorageOperation>> _commits;
    private readonly WalCheckpointer _checkpointer;
    private readonly ConcurrentBag<SqliteConnection> _readers = [];
    private int _disposed;

    /// <summary>The default least time between two background checkpoints.</summary>
    internal static readonly TimeSpan DefaultCheckpointInterval = TimeSpan.FromMilliseconds(100);

    /// <summary>
    /// The log length, in pages, at which a commit checkpoints after all: only when the background checkpointer has
    /// fallen this far behind (SQLite's default, used on every commit path, is 1 000).
    /// </summary>
    internal const int BackstopCheckpointPages = 10_000;

    private SqliteStorage(string connectionString, SqliteConnection writer, TimeSpan checkpointInterval)
    {
        _connectionString = connectionString;
        _writer = writer;
        _checkpointer = new WalCheckpointer(connectionString, checkpointInterval);
        _commits = new GroupCommit<IReadOnlyList<StorageOperation>>(CommitAndNotify, name: "kms sqlite commit");
    }

    /// <summary>Write batches committed so far (each one fsync).</summary>
    internal long Commits => _commits.Batches;

    /// <summary>Background checkpoints run so far.</summary>
    internal long Checkpoints => _checkpointer.Checkpoints;

    /// <summary>Told each write batch's duration (statements and fsync) and size; the KMS's metrics listen here.</summary>
    internal Action<TimeSpan, int>? CommitObserver
    {
        get => _commits.Observer;
        set => _commits.Observer = value;
    }

    /// <summary>Opens (creating if needed) the database at <paramref name="path"/>.</summary>
    public static SqliteStorage Open(string path) => Open(path, DefaultCheckpointInterval);

    /// <summary>Opens the database at <paramref name="path"/> with background checkpoints at most every <paramref name="checkpointInterval"/>.</summary>
    internal static SqliteStorage Open(string path, TimeSpan checkpointInterval)
    {
        var full = Path.GetFullPath(path);
        var dir = Path.GetDirectoryName(full);
        if (!string.IsNullOrEmpty(dir))
        {
            Directory.CreateDirectory(dir);
        }

        var connectionString = new SqliteConnectionStringBuilder
        {
            DataSource = full,
            Mode = SqliteOpenMode.ReadWriteCreate,
            Pooling = false,
        }.ToString();
        var connection = new SqliteConnection(connectionString);
        connection.Open();
        using (var cmd = connection.CreateCommand())
        {
            cmd.CommandText = $"""
                PRAGMA journal_mode=WAL;
                PRAGMA synchronous=FULL;
                PRAGMA busy_timeout=5000;
                PRAGMA wal_autocheckpoint={BackstopCheckpointPages};
                CREATE TABLE IF NOT EXISTS kms_entries (key TEXT PRIMARY KEY NOT NULL, value BLOB NOT NULL) WITHOUT ROWID;
                """;
            cmd.ExecuteNonQuery();
        }

        if (!OperatingSystem.IsWindows())
        {
            // The file holds only barrier ciphertext and the wrapped root key, but nobody else needs to read it.
            File.SetUnixFileMode(full, UnixFileMode.UserRead | UnixFileMode.UserWrite);
        }

        return new SqliteStorage(connectionString, connection, checkpointInterval);
    }

    /// <inheritdoc />
    public Task<byte[]?> GetAsync(string key, CancellationToken cancellationToken = default)
    {
        cancellationToken.ThrowIfCancellationRequested();
        return Task.FromResult(Read(connection =>
        {
            using var cmd = connection.CreateCommand();
            cmd.CommandText = "SELECT value FROM kms_entries WHERE key = $k";
            cmd.Parameters.AddWithValue("$k", key);
            return cmd.ExecuteScalar() as byte[];
        }));
    }

    /// <inheritdoc />
    public Task<IReadOnlyList<KeyValuePair<string, byte[]>>> ReadAllAsync(CancellationToken cancellationToken = default)
    {
        cancellationToken.ThrowIfCancellationRequested();
        return Task.FromResult<IReadOnlyList<KeyValuePair<string, byte[]>>>(Read(connection =>
        {
            // One statement reads one consistent database state (a WAL snapshot), so a backup never mixes before
            // and after a transaction.
            using var cmd = connection.CreateCommand();
            cmd.CommandText = "SELECT key, value FROM kms_entries";
            var result = new List<KeyValuePair<string, byte[]>>();
            using (var reader = cmd.ExecuteReader())
            {
                while (reader.Read())
                {
                    result.Add(new(reader.GetString(0), (byte[])reader.GetValue(1)));
                }
            }

            result.Sort((a, b) => string.CompareOrdinal(a.Key, b.Key));
            return result;
        }));
    }

    /// <inheritdoc />
    public Task PutAsync(string key, ReadOnlyMemory<byte> value, CancellationToken cancellationToken = default) =>
        TransactAsync([StorageOperation.Put(key, value)], cancellationToken);

    /// <inheritdoc />
    public Task DeleteAsync(string key, CancellationToken cancellationToken = default) =>
        TransactAsync([StorageOperation.Delete(key)], cancellationToken);

    /// <inheritdoc />
    public Task<IReadOnlyList<string>> ListAsync(string prefix, CancellationToken cancellationToken = default)
    {
        cancellationToken.ThrowIfCancellationRequested();
        return Task.FromResult(Read(connection =>
        {
            using var cmd = connection.CreateCommand();
            var upper = StorageKeys.PrefixUpperBound(prefix);
            cmd.CommandText = upper is null
                ? "SELECT key FROM kms_entries WHERE key >= $p"
                : "SELECT key FROM kms_entries WHERE key >= $p AND key < $u";
            cmd.Parameters.AddWithValue("$p", prefix);
            if (upper is not null)
            {
                cmd.Parameters.AddWithValue("$u", upper);
            }

            var keys = new List<string>();
            using (var reader = cmd.ExecuteReader())
            {
                while (reader.Read())
                {
                    var key = reader.GetString(0);
                    if (key.StartsWith(prefix, StringComparison.Ordinal))
                    {
                        keys.Add(key);
                    }
                }
            }

            return StorageKeys.ImmediateChildren(prefix, keys);
        }));
    }

    /// <inheritdoc />
    public Task TransactAsync(IReadOnlyList<StorageOperation> operations, CancellationToken cancellationToken = default)
    {
        if (operations.Count == 0)
        {
            return Task.CompletedTask;
        }

        // Cancellation is not observed once queued: a commit either happens fully or not at all, and the caller
        // is told which.
        cancellationToken.ThrowIfCancellationRequested();
        return _commits.SubmitAsync([.. operations]);
    }

    /// <inheritdoc />
    public ValueTask DisposeAsync()
    {
        if (Interlocked.Exchange(ref _disposed, 1) == 1)
        {
            return ValueTask.CompletedTask;
        }

        _commits.Dispose();
        _checkpointer.Dispose();
        _writer.Dispose();
        while (_readers.TryTake(out var reader))
        {
            reader.Dispose();
        }

        return ValueTask.CompletedTask;
    }

    private IReadOnlyList<Exception?> CommitAndNotify(IReadOnlyList<IReadOnlyList<StorageOperation>> batch)
    {
        var outcomes = CommitBatch(batch);
        _checkpointer.Notify();
        return outcomes;
    }

    /// <summary>
    /// Commits <paramref name="batch"/> in one SQLite transaction (one fsync), each member in a savepoint so a
    /// member that fails is rolled back alone. If the transaction as a whole cannot commit, every member that had
    /// applied is retried in a transaction of its own, so each still gets its own outcome.
    /// </summary>
    internal IReadOnlyList<Exception?> CommitBatch(IReadOnlyList<IReadOnlyList<StorageOperation>> batch)
    {
        var outcomes = new Exception?[batch.Count];
        try
        {
            using var tx = _writer.BeginTransaction();
            using var statements = new Statements(_writer, tx);
            for (var i = 0; i < batch.Count; i++)
            {
                if (batch.Count == 1)
                {
                    statements.Apply(batch[i]);
                    continue;
                }

                tx.Save("member");
                try
                {
                    statements.Apply(batch[i]);
                    tx.Release("member");
                }
                catch (Exception e) when (e is SqliteException or InvalidOperationException or ArgumentException)
                {
                    // A failure inside the savepoint leaves the transaction usable once rolled back to it.
                    tx.Rollback("member");
                    tx.Release("member");
                    outcomes[i] = e;
                }
            }

            tx.Commit();
            return outcomes;
        }
        catch (Exception e) when (e is SqliteException or InvalidOperationException or ArgumentException && batch.Count > 1)
        {
            // The batch as a whole failed (the commit itself, or a savepoint that could not be rolled back): nothing
            // of it is durable. Each member that had not failed on its own gets its own transaction.
            for (var i = 0; i < batch.Count; i++)
            {
                if (outcomes[i] is null)
                {
                    outcomes[i] = CommitBatch([batch[i]])[0];
                }
            }

            return outcomes;
        }
        catch (Exception e) when (e is SqliteException or InvalidOperationException or ArgumentException)
        {
            return [e];
        }
    }

    private TResult Read<TResult>(Func<SqliteConnection, TResult> query)
    {
        ObjectDisposedException.ThrowIf(Volatile.Read(ref _disposed) == 1, this);
        if (!_readers.TryTake(out var connection))
        {
            connection = new SqliteConnection(_connectionString);
            connection.Open();
            using var cmd = connection.CreateCommand();
            cmd.CommandText = "PRAGMA busy_timeout=5000;";
            cmd.ExecuteNonQuery();
        }

        try
        {
            return query(connection);
        }
        finally
        {
            if (Volatile.Read(ref _disposed) == 1)
            {
                connection.Dispose();
            }
            else
            {
                _readers.Add(connection);
            }
        }
    }

    /// <summary>The prepared put and delete of one write transaction.</summary>
    private sealed class Statements : IDisposable
    {
        private readonly SqliteCommand _put;
        private readonly SqliteCommand _delete;
        private readonly SqliteParameter _putKey;
        private readonly SqliteParameter _putValue;
        private readonly SqliteParameter _deleteKey;

        public Statements(SqliteConnection connection, SqliteTransaction tx)
        {
            _put = connection.CreateCommand();
            _put.Transaction = tx;
            _put.CommandText = PutSql;
            _putKey = _put.Parameters.Add("$k", SqliteType.Text);
            _putValue = _put.Parameters.Add("$v", SqliteType.Blob);
            _delete = connection.CreateCommand();
            _delete.Transaction = tx;
            _delete.CommandText = DeleteSql;
            _deleteKey = _delete.Parameters.Add("$k", SqliteType.Text);
        }

        public void Apply(IReadOnlyList<StorageOperation> operations)
        {
            foreach (var op in operations)
            {
                if (op.Value is { } value)
                {
                    _putKey.Value = op.Key;
                    _putValue.Value = value.ToArray();
                    _put.ExecuteNonQuery();
                }
                else
                {
                    _deleteKey.Value = op.Key;
                    _delete.ExecuteNonQuery();
                }
            }
        }

        public void Dispose()
        {
            _put.Dispose();
            _delete.Dispose();
        }
    }
}
