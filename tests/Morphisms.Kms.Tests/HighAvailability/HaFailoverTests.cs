using System.Collections.Concurrent;
using System.Diagnostics;
using System.Net;
using Xunit.Abstractions;

namespace Morphisms.Kms.Tests.HighAvailability;

/// <summary>
/// Active/standby HA over a real PostgreSQL with real KMS processes: Vault's standby answers, redirects to the
/// active node, failover after <c>kill -9</c> without losing an acknowledged write, and a race-free init.
/// </summary>
public sealed class HaFailoverTests(PostgresFixture postgres, ITestOutputHelper output) : IClassFixture<PostgresFixture>, IDisposable
{
    private static readonly TimeSpan Patience = TimeSpan.FromSeconds(30);
    private readonly string _dir = Directory.CreateTempSubdirectory("kms-ha-").FullName;
    private readonly List<KmsProcess> _nodes = [];

    [Fact]
    public async Task A_standby_answers_health_and_leader_itself_and_redirects_everything_else_to_the_active_node()
    {
        // Both start on an empty database; init goes through one, and the other sees it.
        var storage = await NewDatabaseAsync();
        var started = await Task.WhenAll(StartAsync(storage), StartAsync(storage));
        var (a, b) = (started[0], started[1]);
        using var ca = Client(a);
        using var cb = Client(b);
        (await cb.GetAsync("sys/health")).Expect(501);
        var (key, root) = await InitAsync(ca);
        cb.Token = root;
        await WaitForAsync(cb, 503);
        (await ca.PutAsync("sys/unseal", new { key })).Expect(200);
        await WaitForAsync(ca, 200);
        (await cb.PutAsync("sys/unseal", new { key })).Expect(200);
        await WaitForAsync(cb, 429);

        var health = (await cb.GetAsync("sys/health")).Expect(429).Body!;
        Assert.True(health["standby"]!.GetValue<bool>());
        Assert.False(health["sealed"]!.GetValue<bool>());
        (await cb.GetAsync("sys/health?standbyok=true")).Expect(200);
        (await cb.GetAsync("sys/health?standbycode=473")).Expect(473);
        Assert.False((await cb.GetAsync("sys/seal-status")).Expect(200).Body!["sealed"]!.GetValue<bool>());
        Assert.Equal("postgresql", (await cb.GetAsync("sys/seal-status")).Body!["storage_type"]!.GetValue<string>());

        var leaderSeenByStandby = (await cb.GetAsync("sys/leader")).Expect(200).Body!;
        Assert.True(leaderSeenByStandby["ha_enabled"]!.GetValue<bool>());
        Assert.False(leaderSeenByStandby["is_self"]!.GetValue<bool>());
        Assert.Equal(Origin(a), leaderSeenByStandby["leader_address"]!.GetValue<string>());
        var leaderSeenByActive = (await ca.GetAsync("sys/leader")).Expect(200).Body!;
        Assert.True(leaderSeenByActive["is_self"]!.GetValue<bool>());
        Assert.Equal(Origin(a), leaderSeenByActive["leader_address"]!.GetValue<string>());
        Assert.NotEqual("0001-01-01T00:00:00Z", leaderSeenByActive["active_time"]!.GetValue<string>());

        // Everything else: 307 to the same path and query on the active node, whose answer is the real one.
        Assert.Equal(Origin(a) + "/v1/secret/data/app/db", await RedirectAsync(cb, HttpMethod.Post, "secret/data/app/db"));
        Assert.Equal(Origin(a) + "/v1/secret/data/app/db?version=1", await RedirectAsync(cb, HttpMethod.Get, "secret/data/app/db?version=1"));
        Assert.Equal(Origin(a) + "/v1/sys/mounts", await RedirectAsync(cb, HttpMethod.Get, "sys/mounts"));
        using (var followed = Client(a))
        {
            (await followed.PostAsync("secret/data/app/db", new { data = new { password = "p1" } }, root)).Expect(200);
        }

        // A client that follows redirects (as Vault clients do) never notices the standby.
        using var following = new VaultHttp(new HttpClient { BaseAddress = b.BaseAddress, Timeout = TimeSpan.FromSeconds(10) }) { Token = root };
        (await following.PostAsync("secret/data/app/api", new { data = new { token = "t1" } })).Expect(200);
        Assert.Equal("t1", (await following.GetAsync("secret/data/app/api")).Expect(200).Data["data"]!["token"]!.GetValue<string>());
        Assert.Equal("p1", (await ca.GetAsync("secret/data/app/db", root)).Expect(200).Data["data"]!["password"]!.GetValue<string>());

        // A standby cannot seal itself through the API (as Vault): that would need the active node's token store.
        (await cb.PutAsync("sys/seal")).Expect(400);
    }

    [Fact]
    public async Task A_stored_api_addr_with_a_path_is_not_redirected_to()
    {
        using var pair = await ActiveAndStandbyAsync();
        var (storage, a, ca, b, cb, key, root) = pair;
        Assert.Equal(Origin(a) + "/v1/sys/policies/acl/ops-admin", await RedirectAsync(cb, HttpMethod.Post, "sys/policies/acl/ops-admin"));

        // Whoever can write the database points api_addr at a real node with a path: the fragment would swallow the
        // path a standby appends, turning a write of policy ops-admin into one of policy x.
        await using (var db = new Npgsql.NpgsqlConnection(await File.ReadAllTextAsync(storage["postgres:file=".Length..])))
        {
            await db.OpenAsync();
            await using var tamper = new Npgsql.NpgsqlCommand("UPDATE kms_ha_leader SET api_addr = $1 WHERE id = 1", db);
            tamper.Parameters.Add(new Npgsql.NpgsqlParameter { Value = Origin(a) + "/v1/sys/policies/acl/x#" });
            Assert.Equal(1, await tamper.ExecuteNonQueryAsync());
        }

        // The standby knows no usable active node, as when api_addr is empty: 503, no Location.
        await WaitForLeaderAsync(cb, "");
        using var request = new HttpRequestMessage(HttpMethod.Post, "/v1/sys/policies/acl/ops-admin") { Content = new StringContent("""{"policy":""}""") };
        request.Headers.Add("X-Vault-Token", root);
        using var response = await cb.Http.SendAsync(request);
        Assert.Equal(HttpStatusCode.ServiceUnavailable, response.StatusCode);
        Assert.Null(response.Headers.Location);
        Assert.Equal(200, (await ca.GetAsync("sys/health")).Status);
    }

    [Fact]
    public async Task A_stored_api_addr_that_fails_authentication_is_answered_503_not_redirected_to()
    {
        using var pair = await ActiveAndStandbyAsync();
        var (storage, a, ca, b, cb, key, root) = pair;
        Assert.Equal(Origin(a) + "/v1/secret/data/app/db", await RedirectAsync(cb, HttpMethod.Post, "secret/data/app/db"));

        await using var db = new Npgsql.NpgsqlConnection(await File.ReadAllTextAsync(storage["postgres:file=".Length..]));
        await db.OpenAsync();
        async Task SetAsync(string assignment, object? value = null)
        {
            await using var tamper = new Npgsql.NpgsqlCommand($"UPDATE kms_ha_leader SET {assignment} WHERE id = 1", db);
            if (value is not null)
            {
                tamper.Parameters.Add(new Npgsql.NpgsqlParameter { Value = value });
            }

            Assert.Equal(1, await tamper.ExecuteNonQueryAsync());
        }

        async Task ExpectRefusedAsync()
        {
            await WaitForLeaderAsync(cb, "");
            var refused = await cb.PostAsync("secret/data/app/db", new { data = new { password = "p1" } });
            Assert.Equal(503, refused.Status);
            Assert.Contains("the active node's address in storage failed authentication", Assert.Single(refused.Errors), StringComparison.Ordinal);
            using var request = new HttpRequestMessage(HttpMethod.Get, "/v1/sys/mounts");
            request.Headers.Add("X-Vault-Token", root);
            using var response = await cb.Http.SendAsync(request);
            Assert.Equal(HttpStatusCode.ServiceUnavailable, response.StatusCode);
            Assert.Null(response.Headers.Location);
        }

        // Whoever can write the database points api_addr at a host of theirs, well-formed: an unpinned client
        // following the 307 would re-send its token and the secret there. (Only api_addr: the active node re-signs its
        // lease every PostgresLeaderLock.LeaseRenewal, writing a fresh MAC over its own address, so a tampered MAC
        // on the real address would turn valid again within seconds. PostgresStorageTests refuses api_addr_mac =
        // NULL and the other tampered fields with the lock under its control.)
        await SetAsync("api_addr = $1", "https://evil.example:8200");
        await ExpectRefusedAsync();

        // Untampered again (the row as the active node keeps writing it, its MAC over its own address): redirected as before.
        await SetAsync("api_addr = $1", Origin(a));
        await WaitForLeaderAsync(cb, Origin(a));
        Assert.Equal(Origin(a) + "/v1/secret/data/app/db", await RedirectAsync(cb, HttpMethod.Post, "secret/data/app/db"));
        Assert.Equal(200, (await ca.GetAsync("sys/health")).Status);
    }

    [Fact]
    public async Task A_standby_redirects_the_path_and_query_as_the_client_sent_them_so_an_escaped_key_is_the_key_written()
    {
        using var pair = await ActiveAndStandbyAsync();
        var (storage, a, ca, b, cb, key, root) = pair;
        ca.Token = root;

        // Key "k%41%2Fv%zz": "%25" is a literal "%", here once before two hex digits (decoded a second time, "%41" is
        // "A"), once before none; "%2F" stays escaped in the path. The query carries escapes too.
        const string named = "/v1/secret/data/k%2541%2Fv%25zz";
        const string query = "?x=%2541&y=a%2Fb";
        using (var request = new HttpRequestMessage(HttpMethod.Post, named + query) { Content = new StringContent("""{"data":{"v":"named"}}""") })
        {
            request.Headers.Add("X-Vault-Token", root);
            using var redirect = await cb.Http.SendAsync(request);
            Assert.Equal(HttpStatusCode.TemporaryRedirect, redirect.StatusCode);
            Assert.Equal(Origin(a) + named + query, redirect.Headers.Location!.OriginalString);

            // Followed as HttpClient follows it: the same request, to the Location.
            using var followed = new HttpRequestMessage(HttpMethod.Post, redirect.Headers.Location) { Content = new StringContent("""{"data":{"v":"named"}}""") };
            followed.Headers.Add("X-Vault-Token", root);
            using var written = await ca.Http.SendAsync(followed);
            Assert.Equal(HttpStatusCode.OK, written.StatusCode);
        }

        // Written where the client named it, and nowhere else (the old Location, "k%41%2Fv%25zz", wrote key "kA%2Fv%zz").
        Assert.Equal("named", (await ca.GetAsync(named["/v1/".Length..])).Expect(200).Data["data"]!["v"]!.GetValue<string>());
        (await ca.GetAsync("secret/data/kA%2Fv%25zz")).Expect(404);
        Assert.Equal("k%41%2Fv%zz", Assert.Single((await ca.ListAsync("secret/metadata/")).Expect(200).Data["keys"]!.AsArray())!.GetValue<string>());

        // A client that follows redirects by itself reads it back through the standby, the query (version=1) kept.
        using var following = new VaultHttp(new HttpClient { BaseAddress = b.BaseAddress, Timeout = TimeSpan.FromSeconds(10) }) { Token = root };
        Assert.Equal("named", (await following.GetAsync(named["/v1/".Length..] + "?version=1")).Expect(200).Data["data"]!["v"]!.GetValue<string>());
        (await following.GetAsync(named["/v1/".Length..] + "?version=2")).Expect(404);
    }

    [Fact]
    public async Task A_standby_redirects_only_a_target_that_is_a_path_so_the_request_line_cannot_name_the_host()
    {
        using var pair = await ActiveAndStandbyAsync();
        var (storage, a, ca, b, cb, key, root) = pair;

        // Absolute-form, which Kestrel accepts when Host agrees: appended to the active node's address, the target
        // would run into its authority. Refused, not redirected anywhere.
        foreach (var target in new[] { "http://evil.example:8200/v1/sys/mounts", "http://evil.example:8200/v1/secret/data/a%2541?x=1" })
        {
            var answer = await RawAsync(b, $"GET {target} HTTP/1.1", "evil.example:8200", root);
            Assert.StartsWith("HTTP/1.1 400 ", answer, StringComparison.Ordinal);
            Assert.DoesNotContain("Location:", answer, StringComparison.OrdinalIgnoreCase);
            Assert.Contains("not an absolute URL", answer, StringComparison.Ordinal);
        }

        // Asterisk-form and a path that is not under /v1 reach no redirect.
        foreach (var line in new[] { "OPTIONS * HTTP/1.1", "GET //evil.example:8200/v1/sys/mounts HTTP/1.1" })
        {
            Assert.DoesNotContain("Location:", await RawAsync(b, line, b.BaseAddress.Authority, root), StringComparison.OrdinalIgnoreCase);
        }

        // Kestrel takes a "#" in a request line as part of the path or query; escaped, it stays there on the active node
        // too, rather than cutting the Location short as a fragment.
        var redirected = await RawAsync(b, "GET /v1/secret/data/a#b?q=c#d HTTP/1.1", b.BaseAddress.Authority, root);
        Assert.StartsWith("HTTP/1.1 307 ", redirected, StringComparison.Ordinal);
        Assert.Contains($"Location: {Origin(a)}/v1/secret/data/a%23b?q=c%23d\r\n", redirected, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Killing_the_active_node_fails_over_within_seconds_and_loses_no_acknowledged_write()
    {
        var storage = await NewDatabaseAsync();
        var a = await StartAsync(storage);
        using var ca = Client(a);
        var (key, root) = await InitAsync(ca);
        ca.Token = root;
        (await ca.PutAsync("sys/unseal", new { key })).Expect(200);
        await WaitForAsync(ca, 200);
        var standbys = new List<(KmsProcess Node, VaultHttp Client)>();
        foreach (var node in await Task.WhenAll(StartAsync(storage), StartAsync(storage)))
        {
            var client = Client(node);
            client.Token = root;
            (await client.PutAsync("sys/unseal", new { key })).Expect(200);
            standbys.Add((node, client));
        }

        foreach (var (_, client) in standbys)
        {
            await WaitForAsync(client, 429);
        }

        // Acknowledged before the kill, one at a time.
        for (var i = 0; i < 20; i++)
        {
            (await ca.PostAsync($"secret/data/before/k{i}", new { data = new { v = i } })).Expect(200);
        }

        // And concurrently while it dies: whatever got a 200 must be there afterwards.
        var acknowledged = new ConcurrentBag<(string Path, int Value)>();
        var tokens = new ConcurrentBag<string>();
        using var stop = new CancellationTokenSource();
        var writers = Enumerable.Range(0, 4).Select(w => Task.Run(async () =>
        {
            for (var i = 0; !stop.IsCancellationRequested; i++)
            {
                try
                {
                    if (w == 3)
                    {
                        var t = await ca.PostAsync("auth/token/create", new { ttl = "1h" });
                        if (t.Status == 200)
                        {
                            tokens.Add(t.Auth["client_token"]!.GetValue<string>());
                        }

                        continue;
                    }

                    var path = $"secret/data/during/w{w}/k{i}";
                    if ((await ca.PostAsync(path, new { data = new { v = i } })).Status == 200)
                    {
                        acknowledged.Add((path, i));
                    }
                }
                catch (Exception e) when (e is HttpRequestException or TaskCanceledException or IOException)
                {
                    return;
                }
            }
        })).ToList();

        var deadline = DateTime.UtcNow + Patience;
        while (acknowledged.Count < 60 && DateTime.UtcNow < deadline)
        {
            await Task.Delay(20);
        }

        // The barrier key's encryption count must not go back across the failover (its nonces are random: the count
        // bounds how many the term has used); the new active node loads what the old one persisted plus a margin.
        var encryptionsBeforeKill = (await ca.GetAsync("sys/key-status")).Expect(200).Data["encryptions"]!.GetValue<long>();
        a.Kill();
        var sinceKill = Stopwatch.StartNew();
        await stop.CancelAsync();
        await Task.WhenAll(writers);
        Assert.True(acknowledged.Count >= 60, $"only {acknowledged.Count} writes were acknowledged before the kill");

        // One standby takes over (bounded by Patience, not by a tighter figure: three KMS processes and PostgreSQL
        // share a loaded CI machine; the time it took is reported); the other keeps standing by and points at it.
        (KmsProcess Node, VaultHttp Client)? promoted = null;
        var takeover = TimeSpan.Zero;
        while (promoted is null && sinceKill.Elapsed < Patience)
        {
            foreach (var candidate in standbys)
            {
                if ((await candidate.Client.GetAsync("sys/health")).Status == 200)
                {
                    promoted = candidate;
                    takeover = sinceKill.Elapsed;
                    break;
                }
            }

            if (promoted is null)
            {
                await Task.Delay(50);
            }
        }

        Assert.True(promoted is not null, $"no standby became active within {sinceKill.Elapsed} of kill -9 (patience {Patience})");
        output.WriteLine($"takeover {takeover.TotalMilliseconds:F0} ms after kill -9; {acknowledged.Count} concurrent writes and {tokens.Count} tokens acknowledged around it");
        var (active, c) = promoted.Value;
        var other = standbys.Single(s => s.Node != active).Client;
        await WaitForAsync(other, 429);
        var leader = await WaitForLeaderAsync(other, Origin(active));
        Assert.False(leader["is_self"]!.GetValue<bool>());

        for (var i = 0; i < 20; i++)
        {
            Assert.Equal(i, (await c.GetAsync($"secret/data/before/k{i}")).Expect(200).Data["data"]!["v"]!.GetValue<int>());
        }

        foreach (var (path, value) in acknowledged)
        {
            var read = await c.GetAsync(path);
            Assert.True(read.Status == 200, $"acknowledged write {path} is missing after the failover: {read.Status} {read.Raw}");
            Assert.Equal(value, read.Data["data"]!["v"]!.GetValue<int>());
        }

        foreach (var token in tokens)
        {
            (await c.GetAsync("auth/token/lookup-self", token)).Expect(200);
        }

        var status = (await c.GetAsync("sys/key-status")).Expect(200).Data;
        Assert.Equal(1, status["term"]!.GetValue<int>());
        Assert.True(status["encryptions"]!.GetValue<long>() > encryptionsBeforeKill, $"the encryption count went back from {encryptionsBeforeKill} to {status["encryptions"]}");

        // The new active node serves writes; the remaining standby redirects to it.
        (await c.PostAsync("secret/data/after", new { data = new { v = 1 } })).Expect(200);
        Assert.Equal(Origin(active) + "/v1/secret/data/after", await RedirectAsync(other, HttpMethod.Get, "secret/data/after"));
    }

    [Fact]
    public async Task An_active_node_that_loses_its_lock_session_steps_down_and_a_new_term_begins()
    {
        var storage = await NewDatabaseAsync();
        var nodes = await Task.WhenAll(StartAsync(storage), StartAsync(storage));
        var clients = nodes.Select(Client).ToList();
        var (key, root) = await InitAsync(clients[0]);
        foreach (var c in clients)
        {
            c.Token = root;
            (await c.PutAsync("sys/unseal", new { key })).Expect(200);
        }

        var (active, _) = await OneActiveAsync(clients);
        var term = (await active.GetAsync("sys/leader")).Expect(200).Body!["active_time"]!.GetValue<string>();
        (await active.PostAsync("secret/data/before", new { data = new { v = 1 } })).Expect(200);

        // Its process lives on, but PostgreSQL ends the session holding the lock (as a broken connection would).
        await using (var db = new Npgsql.NpgsqlConnection(await File.ReadAllTextAsync(storage["postgres:file=".Length..])))
        {
            await db.OpenAsync();
            await using var kill = new Npgsql.NpgsqlCommand(
                "SELECT count(pg_terminate_backend(pid)) FROM pg_locks WHERE locktype = 'advisory' AND granted AND database = (SELECT oid FROM pg_database WHERE datname = current_database())",
                db);
            Assert.Equal(1L, await kill.ExecuteScalarAsync());
        }

        // The node that held it stepped down (its term ended); one node, perhaps the same, is active in a new term.
        var deadline = DateTime.UtcNow + Patience;
        string? newTerm = null;
        VaultHttp? now = null;
        while (DateTime.UtcNow < deadline)
        {
            (now, _) = await OneActiveAsync(clients);
            newTerm = (await now.GetAsync("sys/leader")).Expect(200).Body!["active_time"]!.GetValue<string>();
            if (newTerm != term)
            {
                break;
            }

            await Task.Delay(100);
        }

        Assert.NotEqual(term, newTerm);

        // Leadership may still settle for a moment (the deposed node notices within its lock-check interval, and on a
        // loaded machine a check can time out and hand over once more): ask whichever node is active until one answers.
        var read = (await now!.GetAsync("secret/data/before"));
        while (read.Status == 307 && DateTime.UtcNow < deadline + Patience)
        {
            await Task.Delay(100);
            (now, _) = await OneActiveAsync(clients);
            read = await now.GetAsync("secret/data/before");
        }

        Assert.Equal(1, read.Expect(200).Data["data"]!["v"]!.GetValue<int>());
        (await now.PostAsync("secret/data/after", new { data = new { v = 2 } })).Expect(200);
        foreach (var c in clients)
        {
            c.Dispose();
        }
    }

    [Fact]
    public async Task Two_nodes_initialising_one_empty_database_cannot_both_succeed()
    {
        var storage = await NewDatabaseAsync();
        var nodes = await Task.WhenAll(StartAsync(storage), StartAsync(storage));
        var clients = nodes.Select(Client).ToList();
        var results = await Task.WhenAll(clients.Select(c => c.PutAsync("sys/init", new { secret_shares = 1, secret_threshold = 1 })));
        Assert.Single(results, r => r.Status == 200);
        Assert.All(results.Where(r => r.Status != 200), r => Assert.Contains(r.Status, new[] { 400, 503 }));

        var key = results.Single(r => r.Status == 200).Body!["keys"]![0]!.GetValue<string>();
        foreach (var c in clients)
        {
            (await c.PutAsync("sys/unseal", new { key })).Expect(200);
        }

        var statuses = new List<int>();
        var deadline = DateTime.UtcNow + Patience;
        while (DateTime.UtcNow < deadline)
        {
            statuses = [.. await Task.WhenAll(clients.Select(async c => (await c.GetAsync("sys/health")).Status))];
            if (statuses.Order().SequenceEqual([200, 429]))
            {
                break;
            }

            await Task.Delay(100);
        }

        Assert.Equal([200, 429], statuses.Order());
        foreach (var c in clients)
        {
            c.Dispose();
        }
    }

    public void Dispose()
    {
        foreach (var node in _nodes)
        {
            node.Dispose();
        }

        Directory.Delete(_dir, recursive: true);
    }

    private static string Origin(KmsProcess node) => node.BaseAddress.AbsoluteUri.TrimEnd('/');

    private static VaultHttp Client(KmsProcess node) =>
        new(new HttpClient(new HttpClientHandler { AllowAutoRedirect = false }) { BaseAddress = node.BaseAddress, Timeout = TimeSpan.FromSeconds(10) });

    /// <summary>Sends a request to a standby and returns where its 307 points (the token stays in its header).</summary>
    private static async Task<string> RedirectAsync(VaultHttp standby, HttpMethod method, string path)
    {
        using var request = new HttpRequestMessage(method, "/v1/" + path);
        request.Headers.Add("X-Vault-Token", standby.Token);
        if (method == HttpMethod.Post)
        {
            request.Content = new StringContent("{\"data\":{}}");
        }

        using var response = await standby.Http.SendAsync(request);
        Assert.Equal(HttpStatusCode.TemporaryRedirect, response.StatusCode);
        return response.Headers.Location!.OriginalString;
    }

    /// <summary>Sends one request line (with <paramref name="host"/> as Host) as bytes, and returns the whole answer.</summary>
    private static async Task<string> RawAsync(KmsProcess node, string requestLine, string host, string token)
    {
        using var tcp = new System.Net.Sockets.TcpClient();
        await tcp.ConnectAsync(node.BaseAddress.Host, node.BaseAddress.Port);
        var stream = tcp.GetStream();
        var bytes = System.Text.Encoding.ASCII.GetBytes($"{requestLine}\r\nHost: {host}\r\nX-Vault-Token: {token}\r\nConnection: close\r\n\r\n");
        await stream.WriteAsync(bytes);
        using var reader = new StreamReader(stream);
        return await reader.ReadToEndAsync();
    }

    private static async Task<(string Key, string Root)> InitAsync(VaultHttp client)
    {
        var init = (await client.PutAsync("sys/init", new { secret_shares = 1, secret_threshold = 1 })).Expect(200).Body!;
        return (init["keys"]![0]!.GetValue<string>(), init["root_token"]!.GetValue<string>());
    }

    /// <summary>Waits until exactly one node answers sys/health 200 and the others 429.</summary>
    private static async Task<(VaultHttp Active, List<VaultHttp> Standbys)> OneActiveAsync(List<VaultHttp> clients)
    {
        var deadline = DateTime.UtcNow + Patience;
        var statuses = new int[clients.Count];
        while (DateTime.UtcNow < deadline)
        {
            statuses = await Task.WhenAll(clients.Select(async c => (await c.GetAsync("sys/health")).Status));
            if (statuses.Count(s => s == 200) == 1 && statuses.Count(s => s == 429) == clients.Count - 1)
            {
                var active = clients[Array.IndexOf(statuses, 200)];
                return (active, clients.Where(c => c != active).ToList());
            }

            await Task.Delay(50);
        }

        Assert.Fail($"never exactly one active node: sys/health answered {string.Join(", ", statuses)}");
        return default;
    }

    private static async Task WaitForAsync(VaultHttp client, int healthStatus)
    {
        var deadline = DateTime.UtcNow + Patience;
        var last = 0;
        while (DateTime.UtcNow < deadline)
        {
            last = (await client.GetAsync("sys/health")).Status;
            if (last == healthStatus)
            {
                return;
            }

            await Task.Delay(50);
        }

        Assert.Fail($"sys/health stayed {last}, expected {healthStatus}");
    }

    private static async Task<System.Text.Json.Nodes.JsonObject> WaitForLeaderAsync(VaultHttp client, string address)
    {
        var deadline = DateTime.UtcNow + Patience;
        System.Text.Json.Nodes.JsonObject? body = null;
        while (DateTime.UtcNow < deadline)
        {
            body = (await client.GetAsync("sys/leader")).Expect(200).Body!;
            if (body["leader_address"]!.GetValue<string>() == address)
            {
                return body;
            }

            await Task.Delay(50);
        }

        Assert.Fail($"sys/leader never named {address}: {body}");
        return body!;
    }

    /// <summary>A fresh database, its connection string in a 0600 file for <c>--storage postgres:file=</c>.</summary>
    private async Task<string> NewDatabaseAsync()
    {
        var connectionString = await postgres.Server.CreateDatabaseAsync();
        var file = Path.Combine(_dir, Guid.NewGuid().ToString("N") + ".pg");
        await using (var stream = new FileStream(file, new FileStreamOptions { Mode = FileMode.CreateNew, Access = FileAccess.Write, UnixCreateMode = UnixFileMode.UserRead | UnixFileMode.UserWrite }))
        await using (var writer = new StreamWriter(stream))
        {
            await writer.WriteAsync(connectionString);
        }

        return "postgres:file=" + file;
    }

    /// <summary>Two nodes on a new database: the first initialised, unsealed and active, the second unsealed as its standby.</summary>
    private async Task<ActiveAndStandby> ActiveAndStandbyAsync()
    {
        var storage = await NewDatabaseAsync();
        var a = await StartAsync(storage);
        var ca = Client(a);
        var (key, root) = await InitAsync(ca);
        (await ca.PutAsync("sys/unseal", new { key })).Expect(200);
        await WaitForAsync(ca, 200);
        var b = await StartAsync(storage);
        var cb = Client(b);
        cb.Token = root;
        (await cb.PutAsync("sys/unseal", new { key })).Expect(200);
        await WaitForAsync(cb, 429);
        return new ActiveAndStandby(storage, a, ca, b, cb, key, root);
    }

    private async Task<KmsProcess> StartAsync(string storage)
    {
        var node = await KmsProcess.StartAsync("--listen", "127.0.0.1:0", "--storage", storage);
        lock (_nodes)
        {
            _nodes.Add(node);
        }

        return node;
    }
}

/// <summary>The nodes (stopped with the test class) and the clients (disposed with this) of a two-node set-up.</summary>
internal sealed record ActiveAndStandby(string Storage, KmsProcess A, VaultHttp Ca, KmsProcess B, VaultHttp Cb, string Key, string Root) : IDisposable
{
    public void Dispose()
    {
        Ca.Dispose();
        Cb.Dispose();
    }
}
