using Microsoft.Extensions.Time.Testing;
using Morphisms.Kms.HighAvailability;
using Morphisms.Kms.Storage;
using Npgsql;

namespace Morphisms.Kms.Tests.Storage;

/// <summary>What only the PostgreSQL store does: atomic rollback, secret-safe errors, connection string sources and write fencing.</summary>
public sealed class PostgresStorageTests(PostgresFixture postgres) : IClassFixture<PostgresFixture>, IDisposable
{
    private static readonly byte[] MacKey = Enumerable.Range(1, 32).Select(i => (byte)i).ToArray();
    private readonly string _dir = Directory.CreateTempSubdirectory("kms-pg-spec-").FullName;

    [Fact]
    public async Task A_failing_transaction_writes_nothing()
    {
        var server = postgres.Server;
        await using var storage = PostgresStorage.Open(await server.CreateDatabaseAsync());
        await storage.PutAsync("kept", "1"u8.ToArray());

        // PostgreSQL text cannot hold NUL: the third operation fails after two have run inside the transaction.
        await Assert.ThrowsAnyAsync<Exception>(() => storage.TransactAsync(
            [StorageOperation.Put("new", "2"u8.ToArray()), StorageOperation.Delete("kept"), StorageOperation.Put("bad\0key", "3"u8.ToArray())]));

        Assert.Null(await storage.GetAsync("new"));
        Assert.Equal("1"u8.ToArray(), await storage.GetAsync("kept"));
    }

    [Fact]
    public async Task A_key_as_long_as_a_snapshot_may_hold_is_stored_and_a_much_longer_one_is_not()
    {
        await using var storage = PostgresStorage.Open(await postgres.Server.CreateDatabaseAsync());

        // Random hex does not compress, so the primary-key index sees every byte (it refuses entries over 2704).
        string Key(int length) => Convert.ToHexStringLower(System.Security.Cryptography.RandomNumberGenerator.GetBytes(length / 2));
        var longest = Key(Morphisms.Kms.Snapshots.StorageSnapshot.MaxKeyBytes);
        await storage.PutAsync(longest, "1"u8.ToArray());
        Assert.Equal("1"u8.ToArray(), await storage.GetAsync(longest));
        await Assert.ThrowsAnyAsync<Npgsql.PostgresException>(() => storage.PutAsync(Key(2720), "2"u8.ToArray()));
    }

    [Fact]
    public async Task Opening_twice_creates_the_schema_once_and_shares_the_data()
    {
        var connectionString = await postgres.Server.CreateDatabaseAsync();
        var opened = await Task.WhenAll(Enumerable.Range(0, 3).Select(_ => Task.Run(() => PostgresStorage.Open(connectionString))));
        await opened[0].PutAsync("k", "v"u8.ToArray());
        Assert.Equal("v"u8.ToArray(), await opened[2].GetAsync("k"));
        foreach (var storage in opened)
        {
            await storage.DisposeAsync();
        }
    }

    [Fact]
    public async Task Errors_name_the_server_but_never_the_password()
    {
        var server = postgres.Server;
        var good = await server.CreateDatabaseAsync();
        var database = new NpgsqlConnectionStringBuilder(good).Database!;
        const string wrong = "wrong-password-do-not-echo";
        var e = Assert.Throws<IOException>(() => PostgresStorage.Open(server.ConnectionString(database, wrong)));
        Assert.DoesNotContain(wrong, e.Message, StringComparison.Ordinal);
        Assert.DoesNotContain(server.Password, e.Message, StringComparison.Ordinal);
        Assert.Contains("127.0.0.1", e.Message, StringComparison.Ordinal);
        Assert.Contains("password authentication failed", e.Message, StringComparison.Ordinal);

        var malformed = Assert.Throws<ArgumentException>(() => PostgresStorage.Open("Host=x;Password=s3cret-value;Bogus Keyword=1"));
        Assert.DoesNotContain("s3cret-value", malformed.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task A_database_that_is_not_utf8_is_refused()
    {
        var server = postgres.Server;
        var latin = await server.CreateDatabaseAsync("LATIN1");
        var e = Assert.Throws<IOException>(() => PostgresStorage.Open(latin));
        Assert.Contains("UTF8", e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task The_connection_string_comes_from_a_file_or_the_environment_never_the_spec()
    {
        var connectionString = await postgres.Server.CreateDatabaseAsync();
        var file = Path.Combine(_dir, "pg");
        await File.WriteAllTextAsync(file, connectionString + "\n");
        await using (var storage = StorageSpec.Open("postgres:file=" + file))
        {
            Assert.IsType<PostgresStorage>(storage);
            Assert.Equal("postgresql", StorageSpec.TypeName("postgres:file=" + file));
        }

        Assert.Throws<IOException>(() => StorageSpec.Open("postgres:file=" + Path.Combine(_dir, "missing")));
        await File.WriteAllTextAsync(file, " \n");
        Assert.Throws<ArgumentException>(() => StorageSpec.Open("postgres:file=" + file));
        Assert.Throws<ArgumentException>(() => StorageSpec.Open("postgres:Host=db;Password=x"));
        Assert.Throws<ArgumentException>(() => StorageSpec.Open("postgres:file="));
        if (Environment.GetEnvironmentVariable(PostgresStorage.ConnectionStringVariable) is null)
        {
            var e = Assert.Throws<ArgumentException>(() => StorageSpec.Open("postgres"));
            Assert.Contains(PostgresStorage.ConnectionStringVariable, e.Message, StringComparison.Ordinal);
        }
    }

    [Fact]
    public async Task Writes_are_fenced_by_the_leader_epoch()
    {
        var connectionString = await postgres.Server.CreateDatabaseAsync();
        await using var oldNode = PostgresStorage.Open(connectionString);
        await using var newNode = PostgresStorage.Open(connectionString);
        await using var oldLock = new PostgresLeaderLock(oldNode, TimeProvider.System);
        await using var newLock = new PostgresLeaderLock(newNode, TimeProvider.System);
        var lost = 0;
        oldNode.LeadershipLost += () => Interlocked.Increment(ref lost);

        // A standby writes nothing.
        oldNode.FenceAsStandby();
        await Assert.ThrowsAsync<StandbyWriteException>(() => oldNode.PutAsync("k", "standby"u8.ToArray()));

        var oldEpoch = await oldLock.TryAcquireAsync("old", "http://127.0.0.1:1", MacKey, default);
        Assert.NotNull(oldEpoch);
        Assert.Null(await newLock.TryAcquireAsync("new", "http://127.0.0.1:2", MacKey, default));
        oldNode.FenceAsLeader(oldEpoch.Value);
        await oldNode.PutAsync("k", "old"u8.ToArray());
        Assert.True(await oldLock.StillHeldAsync(default));
        Assert.Equal("http://127.0.0.1:1/", (await newLock.ReadLeaderAsync(MacKey, default))?.Address?.AbsoluteUri);

        // The old node's lock session ends (as when its connection breaks) but it has not noticed yet: the new node
        // takes over, and the old node's next write must fail rather than overwrite the new node's data.
        await oldLock.DisposeAsync();

        // The server ends the closed session (releasing its lock) asynchronously: retry as the election does.
        long? newEpoch = null;
        for (var attempt = 0; newEpoch is null && attempt < 200; attempt++)
        {
            newEpoch = await newLock.TryAcquireAsync("new", "http://127.0.0.1:2", MacKey, default);
            if (newEpoch is null)
            {
                await Task.Delay(50);
            }
        }

        Assert.Equal(oldEpoch + 1, newEpoch);
        newNode.FenceAsLeader(newEpoch!.Value);
        await newNode.PutAsync("k", "new"u8.ToArray());

        await Assert.ThrowsAsync<StandbyWriteException>(() => oldNode.TransactAsync([StorageOperation.Put("k", "stale"u8.ToArray()), StorageOperation.Put("other", "stale"u8.ToArray())]));
        Assert.Equal(1, lost);
        Assert.Equal("new"u8.ToArray(), await newNode.GetAsync("k"));
        Assert.Null(await newNode.GetAsync("other"));

        // Once fenced as standby it refuses without asking the database.
        await Assert.ThrowsAsync<StandbyWriteException>(() => oldNode.PutAsync("k", "stale"u8.ToArray()));
        Assert.Equal("new"u8.ToArray(), await oldNode.GetAsync("k"));
    }

    [Fact]
    public async Task A_write_transaction_left_open_by_a_vanished_node_does_not_block_its_successor()
    {
        var connectionString = await postgres.Server.CreateDatabaseAsync();
        await using var oldNode = PostgresStorage.Open(connectionString);
        await using var newNode = PostgresStorage.Open(connectionString);
        await using var oldLock = new PostgresLeaderLock(oldNode, TimeProvider.System);
        await using var newLock = new PostgresLeaderLock(newNode, TimeProvider.System);
        Assert.NotNull(await oldLock.TryAcquireAsync("old", "http://127.0.0.1:1", MacKey, default));

        // The old node's host dies between a write's batch and its COMMIT: its pooled session sits idle in a
        // transaction holding the leader row FOR KEY SHARE, and nothing on that side will ever end it.
        var stuck = await oldNode.Pool.OpenConnectionAsync();
        var tx = await stuck.BeginTransactionAsync();
        await using (var share = new NpgsqlCommand("SELECT epoch FROM kms_ha_leader WHERE id = 1 FOR KEY SHARE", stuck, tx))
        {
            await share.ExecuteScalarAsync();
        }

        var stuckPid = stuck.ProcessID;
        await oldLock.DisposeAsync();

        // The successor retries as the election does (its FOR UPDATE times out after 5 s while the row is locked):
        // the server must end the idle transaction well before TCP keepalive would (two hours by default).
        var deadline = DateTime.UtcNow + TimeSpan.FromSeconds(25);
        long? newEpoch = null;
        while (newEpoch is null && DateTime.UtcNow < deadline)
        {
            try
            {
                newEpoch = await newLock.TryAcquireAsync("new", "http://127.0.0.1:2", MacKey, default);
            }
            catch (PostgresException e) when (e.SqlState == PostgresErrorCodes.QueryCanceled)
            {
                await newLock.ReleaseAsync();
            }

            if (newEpoch is null)
            {
                await Task.Delay(200);
            }
        }

        Assert.NotNull(newEpoch);
        await using (var check = newNode.Pool.CreateCommand("SELECT count(*) FROM pg_stat_activity WHERE pid = $1"))
        {
            check.Parameters.Add(new NpgsqlParameter { Value = stuckPid });
            Assert.Equal(0L, await check.ExecuteScalarAsync());
        }

        try
        {
            await stuck.DisposeAsync();
        }
        catch (Exception e) when (e is NpgsqlException or InvalidOperationException)
        {
            // Terminated by the server, as intended.
        }
    }

    [Fact]
    public async Task A_stale_write_failing_after_the_node_won_a_newer_epoch_does_not_step_the_new_term_down()
    {
        var connectionString = await postgres.Server.CreateDatabaseAsync();
        await using var node = PostgresStorage.Open(connectionString);
        await using var leaderLock = new PostgresLeaderLock(node, TimeProvider.System);
        var lost = 0;
        node.LeadershipLost += () => Interlocked.Increment(ref lost);
        var first = (await leaderLock.TryAcquireAsync("n", "http://127.0.0.1:1", MacKey, default))!.Value;
        node.FenceAsLeader(first);

        // A write of the first term waits for the leader row while the epoch is being bumped (the node's next term),
        // locked FOR UPDATE first as TryAcquireAsync does.
        await using var bump = await node.Pool.OpenConnectionAsync();
        await using var tx = await bump.BeginTransactionAsync();
        await using (var update = new NpgsqlCommand("SELECT epoch FROM kms_ha_leader WHERE id = 1 FOR UPDATE; UPDATE kms_ha_leader SET epoch = epoch + 1 WHERE id = 1", bump, tx))
        {
            await update.ExecuteNonQueryAsync();
        }

        var stale = node.PutAsync("k", "stale"u8.ToArray());
        await using (var waiting = node.Pool.CreateCommand("SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' AND datname = current_database()"))
        {
            while ((long)(await waiting.ExecuteScalarAsync())! == 0)
            {
                await Task.Delay(10);
            }
        }

        node.FenceAsLeader(first + 1);
        await tx.CommitAsync();

        // The stale write fails, but the term the node has since won is not given up.
        await Assert.ThrowsAsync<StandbyWriteException>(() => stale);
        Assert.Equal(0, lost);
        await node.PutAsync("k", "new term"u8.ToArray());
        Assert.Equal("new term"u8.ToArray(), await node.GetAsync("k"));
    }

    [Fact]
    public async Task The_lease_renewal_does_not_wait_for_the_fenced_writes_in_flight()
    {
        var connectionString = await postgres.Server.CreateDatabaseAsync();
        var time = new FakeTimeProvider(DateTimeOffset.UtcNow);
        await using var node = PostgresStorage.Open(connectionString);
        await using var nodeLock = new PostgresLeaderLock(node, time);
        var epoch = (await nodeLock.TryAcquireAsync("n", "http://127.0.0.1:1", MacKey, default))!.Value;
        node.FenceAsLeader(epoch);

        // A write of this term holds the leader row from its fence check to its COMMIT. Under hundreds of writes a
        // second those spans overlap without a gap, so a renewal that waited for them could wait past the lock
        // session's statement_timeout and step the node down: it must not wait for even one.
        await using var hold = await HoldCommitsAsync(node);
        var write = node.PutAsync("k", "v"u8.ToArray());
        await hold.UntilOneWaitsAsync();
        time.Advance(PostgresLeaderLock.LeaseRenewal);
        var lease = await LeaseAsync(node);
        // Waiting for the held write, the renewal would never end, or fail at the lock session's 5 s statement_timeout:
        // 10 s of patience catches both and leaves a loaded machine's round trips room.
        using (var patience = new CancellationTokenSource(TimeSpan.FromSeconds(10)))
        {
            Assert.True(await nodeLock.RenewAsync("n", "http://127.0.0.1:1", epoch, MacKey, patience.Token));
        }
        Assert.True(await LeaseAsync(node) > lease);
        Assert.False(write.IsCompleted);

        // The renewal changes no epoch: the write still commits under the term it checked.
        await hold.DisposeAsync();
        await write;
        Assert.Equal("v"u8.ToArray(), await node.GetAsync("k"));
    }

    [Fact]
    public async Task A_takeover_waits_for_the_fenced_writes_in_flight_of_the_term_it_ends()
    {
        var connectionString = await postgres.Server.CreateDatabaseAsync();
        await using var oldNode = PostgresStorage.Open(connectionString);
        await using var newNode = PostgresStorage.Open(connectionString);
        await using var oldLock = new PostgresLeaderLock(oldNode, TimeProvider.System);
        await using var newLock = new PostgresLeaderLock(newNode, TimeProvider.System);
        var oldEpoch = (await oldLock.TryAcquireAsync("old", "http://127.0.0.1:1", MacKey, default))!.Value;
        oldNode.FenceAsLeader(oldEpoch);

        // A write of the old term has passed its fence check but not committed when the old node's lock goes.
        await using var hold = await HoldCommitsAsync(oldNode);
        var write = oldNode.PutAsync("k", "old"u8.ToArray());
        await hold.UntilOneWaitsAsync();
        await oldLock.ReleaseAsync();

        // The new term's epoch bump must wait for it: committed after the bump, it would land after the new node
        // loaded its state, unseen by it.
        var takeover = newLock.TryAcquireAsync("new", "http://127.0.0.1:2", MacKey, default);
        await Task.WhenAny(takeover, Task.Delay(TimeSpan.FromSeconds(1)));
        Assert.False(takeover.IsCompleted, "the takeover did not wait for a write of the term it ends");
        await hold.DisposeAsync();
        await write;
        Assert.Equal(oldEpoch + 1, await takeover);

        // Any write of the old term from now on fails its fence check.
        await Assert.ThrowsAsync<StandbyWriteException>(() => oldNode.PutAsync("k", "stale"u8.ToArray()));
        Assert.Equal("old"u8.ToArray(), await newNode.GetAsync("k"));
    }

    /// <summary>
    /// Makes every write to <c>kms_entries</c> wait at its COMMIT — after its fence check, the leader row still locked
    /// — until the returned hold is disposed: a deferred trigger waits for an advisory lock the hold keeps.
    /// </summary>
    private static async Task<CommitHold> HoldCommitsAsync(PostgresStorage storage)
    {
        var connection = await storage.Pool.OpenConnectionAsync();
        await using var install = new NpgsqlCommand(
            """
            CREATE FUNCTION hold_commit() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN PERFORM pg_advisory_xact_lock(4242); RETURN NULL; END $$;
            CREATE CONSTRAINT TRIGGER hold_commit AFTER INSERT OR UPDATE ON kms_entries DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION hold_commit();
            SELECT pg_advisory_lock(4242);
            """,
            connection);
        await install.ExecuteNonQueryAsync();
        return new CommitHold(connection);
    }

    private sealed class CommitHold(NpgsqlConnection connection) : IAsyncDisposable
    {
        private bool _released;

        /// <summary>Returns once a write waits at its COMMIT.</summary>
        public async Task UntilOneWaitsAsync()
        {
            await using var waiting = new NpgsqlCommand("SELECT count(*) FROM pg_stat_activity WHERE wait_event = 'advisory' AND datname = current_database()", connection);
            var deadline = DateTime.UtcNow + TimeSpan.FromSeconds(30);
            while ((long)(await waiting.ExecuteScalarAsync())! == 0)
            {
                Assert.True(DateTime.UtcNow < deadline, "no write reached its commit");
                await Task.Delay(10);
            }
        }

        /// <summary>Lets the held writes commit, and later ones pass.</summary>
        public async ValueTask DisposeAsync()
        {
            if (_released)
            {
                return;
            }

            _released = true;
            // Unlocked first: DROP TRIGGER waits for the held writes' table locks, and they for the advisory lock.
            await using (var release = new NpgsqlCommand("SELECT pg_advisory_unlock(4242); DROP TRIGGER hold_commit ON kms_entries", connection))
            {
                await release.ExecuteNonQueryAsync();
            }

            await connection.DisposeAsync();
        }
    }

    [Fact]
    public async Task Acquiring_the_leader_lock_it_already_holds_does_not_stack_it()
    {
        var connectionString = await postgres.Server.CreateDatabaseAsync();
        await using var node = PostgresStorage.Open(connectionString);
        await using var other = PostgresStorage.Open(connectionString);
        await using var nodeLock = new PostgresLeaderLock(node, TimeProvider.System);
        await using var otherLock = new PostgresLeaderLock(other, TimeProvider.System);
        Assert.NotNull(await nodeLock.TryAcquireAsync("n", "http://127.0.0.1:1", MacKey, default));
        Assert.NotNull(await nodeLock.TryAcquireAsync("n", "http://127.0.0.1:1", MacKey, default));

        // Advisory locks count: had the second call taken it again, one unlock would leave it held.
        await nodeLock.ReleaseAsync();
        Assert.NotNull(await otherLock.TryAcquireAsync("o", "http://127.0.0.1:2", MacKey, default));
    }

    [Fact]
    public async Task The_published_address_reads_back_only_while_its_mac_verifies()
    {
        var connectionString = await postgres.Server.CreateDatabaseAsync();
        await using var active = PostgresStorage.Open(connectionString);
        await using var standby = PostgresStorage.Open(connectionString);
        await using var activeLock = new PostgresLeaderLock(active, TimeProvider.System);
        await using var standbyLock = new PostgresLeaderLock(standby, TimeProvider.System);
        var epoch = (await activeLock.TryAcquireAsync("n", "https://kms-1.internal:8200", MacKey, default))!.Value;

        var leader = (await standbyLock.ReadLeaderAsync(MacKey, default))!;
        Assert.Equal(new Uri("https://kms-1.internal:8200"), leader.Address);
        Assert.Equal(("n", epoch), (leader.NodeId, leader.Epoch));

        // Another cluster's key (another root key) does not verify it.
        var otherKey = MacKey.Select(b => (byte)(b ^ 0xFF)).ToArray();
        Assert.Null((await standbyLock.ReadLeaderAsync(otherKey, default))!.Address);

        // Whoever can write the database changes the address, or any field the MAC covers: a node holds the lock, no
        // address. The active node's next acquire (a new term) writes a row that verifies again.
        foreach (var tamper in new[] { "api_addr = 'https://evil.example:8200'", "node_id = 'm'", "epoch = epoch + 1", "lease_until = lease_until + interval '1 hour'", "lease_until = NULL", "api_addr_mac = NULL", "api_addr_mac = decode(repeat('00', 32), 'hex')" })
        {
            await using (var update = standby.Pool.CreateCommand($"UPDATE kms_ha_leader SET {tamper} WHERE id = 1"))
            {
                Assert.Equal(1, await update.ExecuteNonQueryAsync());
            }

            var read = await standbyLock.ReadLeaderAsync(MacKey, default);
            Assert.NotNull(read);
            Assert.Null(read.Address);

            Assert.NotNull(await activeLock.TryAcquireAsync("n", "https://kms-1.internal:8200", MacKey, default));
            Assert.Equal(new Uri("https://kms-1.internal:8200"), (await standbyLock.ReadLeaderAsync(MacKey, default))!.Address);
        }
    }

    [Fact]
    public async Task A_standby_refuses_the_address_once_its_lease_lapses_and_the_active_node_renews_it()
    {
        var connectionString = await postgres.Server.CreateDatabaseAsync();
        var time = new FakeTimeProvider(DateTimeOffset.UtcNow);
        await using var active = PostgresStorage.Open(connectionString);
        await using var standby = PostgresStorage.Open(connectionString);
        await using var activeLock = new PostgresLeaderLock(active, time);
        await using var standbyLock = new PostgresLeaderLock(standby, time);
        var address = new Uri("https://kms-1.internal:8200");
        var epoch = (await activeLock.TryAcquireAsync("n", address.OriginalString, MacKey, default))!.Value;
        Assert.Equal(address, (await standbyLock.ReadLeaderAsync(MacKey, default))!.Address);

        // Not due yet: nothing written. Due: a new lease (and MAC) a standby accepts for another Lease.
        time.Advance(PostgresLeaderLock.LeaseRenewal - TimeSpan.FromMilliseconds(1));
        var lease = await LeaseAsync(active);
        Assert.True(await activeLock.RenewAsync("n", address.OriginalString, epoch, MacKey, default));
        Assert.Equal(lease, await LeaseAsync(active));
        time.Advance(TimeSpan.FromMilliseconds(1));
        Assert.True(await activeLock.RenewAsync("n", address.OriginalString, epoch, MacKey, default));
        Assert.True(await LeaseAsync(active) > lease);
        time.Advance(PostgresLeaderLock.Lease - TimeSpan.FromSeconds(1));
        Assert.Equal(address, (await standbyLock.ReadLeaderAsync(MacKey, default))!.Address);

        // The active node stopped renewing (hung, cut off, or its clock far behind): the lease runs out, no redirect.
        time.Advance(TimeSpan.FromSeconds(1) + TimeSpan.FromMilliseconds(1));
        var lapsed = (await standbyLock.ReadLeaderAsync(MacKey, default))!;
        Assert.Null(lapsed.Address);
        Assert.Contains("lease that expired", lapsed.Refusal, StringComparison.Ordinal);
        Assert.True(await activeLock.RenewAsync("n", address.OriginalString, epoch, MacKey, default));
        Assert.Equal(address, (await standbyLock.ReadLeaderAsync(MacKey, default))!.Address);
    }

    [Fact]
    public async Task An_earlier_terms_row_written_back_is_refused_by_a_node_that_saw_a_later_term_and_by_all_once_its_lease_lapses()
    {
        var connectionString = await postgres.Server.CreateDatabaseAsync();
        var time = new FakeTimeProvider(DateTimeOffset.UtcNow);
        await using var first = PostgresStorage.Open(connectionString);
        await using var second = PostgresStorage.Open(connectionString);
        await using var standby = PostgresStorage.Open(connectionString);
        await using var firstLock = new PostgresLeaderLock(first, time);
        await using var secondLock = new PostgresLeaderLock(second, time);
        await using var standbyLock = new PostgresLeaderLock(standby, time);
        var decommissioned = new Uri("https://kms-1.internal:8200");
        var earlier = (await firstLock.TryAcquireAsync("n1", decommissioned.OriginalString, MacKey, default))!.Value;
        Assert.Equal(decommissioned, (await standbyLock.ReadLeaderAsync(MacKey, default))!.Address);

        // Whoever can read the database keeps the row; the node goes, another takes over.
        async Task RunAsync(string sql)
        {
            await using var command = standby.Pool.CreateCommand(sql);
            await command.ExecuteNonQueryAsync();
        }

        await RunAsync("CREATE TABLE captured AS SELECT * FROM kms_ha_leader");
        await firstLock.ReleaseAsync();
        var later = (await secondLock.TryAcquireAsync("n2", "https://kms-2.internal:8200", MacKey, default))!.Value;
        Assert.Equal(new Uri("https://kms-2.internal:8200"), (await standbyLock.ReadLeaderAsync(MacKey, default))!.Address);

        // Written back while the new node holds the lock: its MAC verifies, but a node that saw the later term refuses it.
        await RunAsync("DELETE FROM kms_ha_leader; INSERT INTO kms_ha_leader SELECT * FROM captured");
        var replayed = (await standbyLock.ReadLeaderAsync(MacKey, default))!;
        Assert.Equal(earlier, replayed.Epoch);
        Assert.Null(replayed.Address);
        Assert.Contains("earlier leader term", replayed.Refusal, StringComparison.Ordinal);

        // A node that saw no later term (just started) has only the lease to go by: the bound is Lease after the write.
        await using var fresh = PostgresStorage.Open(connectionString);
        await using var freshLock = new PostgresLeaderLock(fresh, time);
        Assert.Equal(decommissioned, (await freshLock.ReadLeaderAsync(MacKey, default))!.Address);
        time.Advance(PostgresLeaderLock.Lease + TimeSpan.FromMilliseconds(1));
        Assert.Null((await freshLock.ReadLeaderAsync(MacKey, default))!.Address);

        // The active node's renewal finds another term's row: it gives up, and its next term rises above both epochs.
        Assert.False(await secondLock.RenewAsync("n2", "https://kms-2.internal:8200", later, MacKey, default));
        Assert.Equal(later + 1, await secondLock.TryAcquireAsync("n2", "https://kms-2.internal:8200", MacKey, default));
        Assert.Equal(new Uri("https://kms-2.internal:8200"), (await standbyLock.ReadLeaderAsync(MacKey, default))!.Address);
    }

    [Fact]
    public async Task A_standby_follows_the_next_term_after_postgres_went_back_to_a_lower_epoch()
    {
        var connectionString = await postgres.Server.CreateDatabaseAsync();
        var time = new FakeTimeProvider(DateTimeOffset.UtcNow);
        await using var old = PostgresStorage.Open(connectionString);
        await using var standby = PostgresStorage.Open(connectionString);
        var oldLock = new PostgresLeaderLock(old, time);
        await using var standbyLock = new PostgresLeaderLock(standby, time);
        long seen = 0;
        for (var term = 0; term < 3; term++)
        {
            seen = (await oldLock.TryAcquireAsync("old", "https://kms-1.internal:8200", MacKey, default))!.Value;
        }

        Assert.Equal(3L, seen);
        Assert.Equal(new Uri("https://kms-1.internal:8200"), (await standbyLock.ReadLeaderAsync(MacKey, default))!.Address);

        // PostgreSQL goes back to an earlier state (a backup restored, a lagging replica promoted): the epoch with it,
        // and the active node's session is gone. A node that never saw the later epochs begins the next term.
        await using (var rollback = standby.Pool.CreateCommand("UPDATE kms_ha_leader SET epoch = 1 WHERE id = 1"))
        {
            await rollback.ExecuteNonQueryAsync();
        }

        await oldLock.DisposeAsync();
        time.Advance(TimeSpan.FromSeconds(1));
        await using var fresh = PostgresStorage.Open(connectionString);
        await using var freshLock = new PostgresLeaderLock(fresh, time);
        long? epoch = null;
        for (var attempt = 0; epoch is null && attempt < 200; attempt++)
        {
            epoch = await freshLock.TryAcquireAsync("new", "https://kms-2.internal:8200", MacKey, default);
            if (epoch is null)
            {
                await Task.Delay(50);
            }
        }

        Assert.Equal(2L, epoch);

        // Lower than the epoch the standby saw, but leased after it: the next term's row, not an earlier one's.
        var leader = (await standbyLock.ReadLeaderAsync(MacKey, default))!;
        Assert.Equal((new Uri("https://kms-2.internal:8200"), 2L), (leader.Address, leader.Epoch));
        Assert.Null(leader.Refusal);

        // Still, the standby's own next term rises above every epoch it saw: a deposed node's fence may hold one.
        await freshLock.ReleaseAsync();
        Assert.Equal(seen + 1, await standbyLock.TryAcquireAsync("standby", "https://kms-3.internal:8200", MacKey, default));
    }

    private static async Task<DateTime> LeaseAsync(PostgresStorage storage)
    {
        await using var read = storage.Pool.CreateCommand("SELECT lease_until FROM kms_ha_leader WHERE id = 1");
        return (DateTime)(await read.ExecuteScalarAsync())!;
    }

    [Fact]
    public async Task A_leader_table_from_before_the_mac_gains_the_column_and_its_row_authenticates_once_rewritten()
    {
        var connectionString = await postgres.Server.CreateDatabaseAsync();
        await using (var db = new NpgsqlConnection(connectionString))
        {
            await db.OpenAsync();
            await using var old = new NpgsqlCommand(
                """
                CREATE TABLE kms_ha_leader (id int PRIMARY KEY CHECK (id = 1), epoch bigint NOT NULL, node_id text NOT NULL, api_addr text NOT NULL, active_since timestamptz);
                INSERT INTO kms_ha_leader VALUES (1, 7, 'old-node', 'https://kms-1.internal:8200', now());
                """,
                db);
            await old.ExecuteNonQueryAsync();
        }

        await using var node = PostgresStorage.Open(connectionString);
        await using var other = PostgresStorage.Open(connectionString);
        await using var nodeLock = new PostgresLeaderLock(node, TimeProvider.System);
        await using var otherLock = new PostgresLeaderLock(other, TimeProvider.System);

        // An older KMS holds the lock and wrote no MAC: a node holds it, but its address is not to be trusted.
        await using (var olderKms = await other.SessionSource.OpenConnectionAsync())
        {
            await using (var take = new NpgsqlCommand($"SELECT pg_advisory_lock({PostgresStorage.LeaderLockKey})", olderKms))
            {
                await take.ExecuteScalarAsync();
            }

            var leader = (await otherLock.ReadLeaderAsync(MacKey, default))!;
            Assert.Equal((7L, "old-node"), (leader.Epoch, leader.NodeId));
            Assert.Null(leader.Address);
        }

        // The session ended, so the lock is free once the server notices: the next active node rewrites the row.
        long? epoch = null;
        for (var attempt = 0; epoch is null && attempt < 200; attempt++)
        {
            epoch = await nodeLock.TryAcquireAsync("n", "https://kms-2.internal:8200", MacKey, default);
            if (epoch is null)
            {
                await Task.Delay(50);
            }
        }

        Assert.Equal(8L, epoch);
        Assert.Equal(new Uri("https://kms-2.internal:8200"), (await otherLock.ReadLeaderAsync(MacKey, default))!.Address);
    }

    public void Dispose() => Directory.Delete(_dir, recursive: true);
}
