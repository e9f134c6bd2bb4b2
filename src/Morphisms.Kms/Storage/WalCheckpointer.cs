using Microsoft.Data.Sqlite;

namespace Morphisms.Kms.Storage;

/// <summary>
/// Copies SQLite's write-ahead log back into the database file on a thread of its own, so that no commit pays for it.
/// By default SQLite checkpoints inside whichever commit takes the log past 1 000 pages: that commit, and with group
/// commit every write queued behind it, then waits while ~4 MB are copied and the database file is fsynced (measured
/// here, replaying a login's writes with a commit every 5 ms: commit p99 7–8 ms with it against under 2 ms without).
/// A checkpoint only copies what is already durable in the log, so moving it changes nothing about what an
/// acknowledged write guarantees.
/// </summary>
internal sealed class WalCheckpointer : IDisposable
{
    private readonly string _connectionString;
    private readonly TimeSpan _interval;
    private readonly object _gate = new();
    private Thread? _thread;
    private bool _pending;
    private bool _disposed;
    private long _checkpoints;

    /// <param name="connectionString">The database, opened by a connection of the checkpointer's own.</param>
    /// <param name="interval">
    /// The least time between two checkpoints: commits arriving meanwhile are copied together by the next one, so the
    /// log stays about one interval's writes long and checkpoints cost a bounded number of fsyncs a second.
    /// </param>
    public WalCheckpointer(string connectionString, TimeSpan interval)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(interval, TimeSpan.Zero);
        _connectionString = connectionString;
        _interval = interval;
    }

    /// <summary>Checkpoints run so far (for tests and diagnostics).</summary>
    public long Checkpoints => Interlocked.Read(ref _checkpoints);

    /// <summary>Says that a commit has added to the log; a checkpoint follows within the interval.</summary>
    public void Notify()
    {
        lock (_gate)
        {
            if (_disposed)
            {
                return;
            }

            _pending = true;
            if (_thread is null)
            {
                _thread = new Thread(Run) { IsBackground = true, Name = "kms sqlite checkpoint" };
                _thread.Start();
            }
            else
            {
                Monitor.Pulse(_gate);
            }
        }
    }

    /// <summary>Stops the checkpointer; the last connection to close checkpoints what is left.</summary>
    public void Dispose()
    {
        Thread? thread;
        lock (_gate)
        {
            if (_disposed)
            {
                return;
            }

            _disposed = true;
            thread = _thread;
            Monitor.Pulse(_gate);
        }

        thread?.Join();
    }

    private void Run()
    {
        SqliteConnection? connection = null;
        try
        {
            while (WaitForWork())
            {
                try
                {
                    connection ??= Connect(_connectionString);

                    // PASSIVE never waits for the writer or for readers: it copies what it can and leaves the rest
                    // for next time.
                    using var checkpoint = connection.CreateCommand();
                    checkpoint.CommandText = "PRAGMA wal_checkpoint(PASSIVE);";
                    checkpoint.ExecuteNonQuery();
                    Interlocked.Increment(ref _checkpoints);
                }
                catch (SqliteException)
                {
                    // Retried after the next commit, on a fresh connection; until then the writer's backstop bounds
                    // the log.
                    connection?.Dispose();
                    connection = null;
                }

                Pause();
            }
        }
        finally
        {
            connection?.Dispose();
        }
    }

    private static SqliteConnection Connect(string connectionString)
    {
        var connection = new SqliteConnection(connectionString);
        try
        {
            connection.Open();
            using var setup = connection.CreateCommand();

            // The database file must be on disk before the writer may reuse the log it was copied from: a
            // checkpoint fsyncs it only when its own connection says so.
            setup.CommandText = "PRAGMA synchronous=FULL;";
            setup.ExecuteNonQuery();
            return connection;
        }
        catch
        {
            connection.Dispose();
            throw;
        }
    }

    /// <summary>Waits until a commit has added to the log; false once disposed.</summary>
    private bool WaitForWork()
    {
        lock (_gate)
        {
            while (!_pending && !_disposed)
            {
                Monitor.Wait(_gate);
            }

            _pending = false;
            return !_disposed;
        }
    }

    /// <summary>
    /// Waits out the interval. Notifications meanwhile only mark work pending: waking for each would checkpoint after
    /// every commit.
    /// </summary>
    private void Pause()
    {
        var resume = Environment.TickCount64 + (long)_interval.TotalMilliseconds;
        lock (_gate)
        {
            for (var left = resume - Environment.TickCount64; left > 0 && !_disposed; left = resume - Environment.TickCount64)
            {
                Monitor.Wait(_gate, TimeSpan.FromMilliseconds(left));
            }
        }
    }
}
