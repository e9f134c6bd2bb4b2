using Microsoft.Data.Sqlite;

namespace Morphisms.Kms.Storage;

/// <summary>
/// Embedded SQLite storage. WAL journal with <c>synchronous=FULL</c> makes every acknowledged commit reach the
/// disk before the call returns, so it survives <c>kill -9</c> and power loss. One connection serialised by a
/// lock: the KMS's write rate is small and SQLite has a single writer anyway.
/// </summary>
public sealed class SqliteStorage : IPhysicalStorage
{
    private readonly SqliteConnection _connection;
    private readonly SemaphoreSlim _lock = new(1, 1);

    private SqliteStorage(SqliteConnection connection) => _connection = connection;

    /// <summary>Opens (creating if needed) the database at <paramref name="path"/>.</summary>
    public static SqliteStorage Open(string path)
    {
        var full = Path.GetFullPath(path);
        var dir = Path.GetDirectoryName(full);
        if (!string.IsNullOrEmpty(dir))
        {
            Directory.CreateDirectory(dir);
        }

        var connection = new SqliteConnection(new SqliteConnectionStringBuilder
        {
            DataSource = full,
            Mode = SqliteOpenMode.ReadWriteCreate,
            Pooling = false,
        }.ToString());
        connection.Open();
        using (var cmd = connection.CreateCommand())
        {
            cmd.CommandText = """
                PRAGMA journal_mode=WAL;
                PRAGMA synchronous=FULL;
                PRAGMA busy_timeout=5000;
                CREATE TABLE IF NOT EXISTS kms_entries (key TEXT PRIMARY KEY NOT NULL, value BLOB NOT NULL) WITHOUT ROWID;
                """;
            cmd.ExecuteNonQuery();
        }

        if (!OperatingSystem.IsWindows())
        {
            // The file holds only barrier ciphertext and the wrapped root key, but nobody else needs to read it.
            File.SetUnixFileMode(full, UnixFileMode.UserRead | UnixFileMode.UserWrite);
        }

        return new SqliteStorage(connection);
    }

    /// <inheritdoc />
    public async Task<byte[]?> GetAsync(string key, CancellationToken cancellationToken = default)
    {
        await _lock.WaitAsync(cancellationToken).ConfigureAwait(false);
        try
        {
            using var cmd = _connection.CreateCommand();
            cmd.CommandText = "SELECT value FROM kms_entries WHERE key = $k";
            cmd.Parameters.AddWithValue("$k", key);
            return cmd.ExecuteScalar() as byte[];
        }
        finally
        {
            _lock.Release();
        }
    }

    /// <inheritdoc />
    public async Task<IReadOnlyList<KeyValuePair<string, byte[]>>> ReadAllAsync(CancellationToken cancellationToken = default)
    {
        await _lock.WaitAsync(cancellationToken).ConfigureAwait(false);
        try
        {
            // One statement reads one consistent database state, so a backup never mixes before and after a transaction.
            using var cmd = _connection.CreateCommand();
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
        }
        finally
        {
            _lock.Release();
        }
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
        await _lock.WaitAsync(cancellationToken).ConfigureAwait(false);
        try
        {
            using var cmd = _connection.CreateCommand();
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
        }
        finally
        {
            _lock.Release();
        }
    }

    /// <inheritdoc />
    public async Task TransactAsync(IReadOnlyList<StorageOperation> operations, CancellationToken cancellationToken = default)
    {
        if (operations.Count == 0)
        {
            return;
        }

        await _lock.WaitAsync(cancellationToken).ConfigureAwait(false);
        try
        {
            using var tx = _connection.BeginTransaction();
            using var put = _connection.CreateCommand();
            put.Transaction = tx;
            put.CommandText = "INSERT INTO kms_entries(key, value) VALUES($k, $v) ON CONFLICT(key) DO UPDATE SET value = excluded.value";
            var pk = put.Parameters.Add("$k", SqliteType.Text);
            var pv = put.Parameters.Add("$v", SqliteType.Blob);
            using var del = _connection.CreateCommand();
            del.Transaction = tx;
            del.CommandText = "DELETE FROM kms_entries WHERE key = $k";
            var dk = del.Parameters.Add("$k", SqliteType.Text);
            foreach (var op in operations)
            {
                if (op.Value is { } value)
                {
                    pk.Value = op.Key;
                    pv.Value = value.ToArray();
                    put.ExecuteNonQuery();
                }
                else
                {
                    dk.Value = op.Key;
                    del.ExecuteNonQuery();
                }
            }

            // Cancellation is not observed past this point: a commit either happens fully or not at all.
            tx.Commit();
        }
        finally
        {
            _lock.Release();
        }
    }

    /// <inheritdoc />
    public ValueTask DisposeAsync()
    {
        _connection.Dispose();
        _lock.Dispose();
        return ValueTask.CompletedTask;
    }
}
