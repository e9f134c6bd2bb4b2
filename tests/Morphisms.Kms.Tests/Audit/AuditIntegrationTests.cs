using System.Text.Json.Nodes;
using Morphisms.Kms.Audit;
using Morphisms.Kms.Storage;

namespace Morphisms.Kms.Tests.Audit;

public sealed class AuditIntegrationTests : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("kms-audit-it-").FullName;

    [Fact]
    public async Task The_log_records_requests_without_secrets_and_verifies()
    {
        var log = Path.Combine(_dir, "audit.log");
        var storage = "sqlite:" + Path.Combine(_dir, "kms.db");
        string child;
        List<string> keys;
        string root;
        await using (var kms = await TestKms.StartAsync(o => o with { AuditLogPath = log }, storage))
        {
            await kms.InitAsync(1, 1);
            await kms.UnsealAsync();
            (root, keys) = (kms.RootToken, kms.Keys.ToList());
            var c = kms.Client;
            child = (await c.PostAsync("auth/token/create", new { ttl = "1h", policies = new[] { "default" } })).Expect(200).Auth["client_token"]!.GetValue<string>();
            (await c.PostAsync("secret/data/db", new { data = new { password = "correct-horse-battery" } })).Expect(200);
            (await c.GetAsync("secret/data/db")).Expect(200);
            (await c.GetAsync("secret/data/db", "hvs.wrong")).Expect(403);

            var text = await File.ReadAllTextAsync(log);
            Assert.DoesNotContain("correct-horse-battery", text, StringComparison.Ordinal);
            Assert.DoesNotContain(root, text, StringComparison.Ordinal);
            Assert.DoesNotContain(child, text, StringComparison.Ordinal);
            Assert.DoesNotContain("hvs.wrong", text, StringComparison.Ordinal);
            Assert.Contains("\"path\":\"secret/data/db\"", text, StringComparison.Ordinal);
            Assert.Contains("\"error\":\"permission denied\"", text, StringComparison.Ordinal);

            // An operator can find a known value by its HMAC, without the log revealing it.
            var hash = (await c.PostAsync("sys/audit-hash/file", new { input = "correct-horse-battery" })).Expect(200).Data["hash"]!.GetValue<string>();
            Assert.StartsWith("hmac-sha256:", hash, StringComparison.Ordinal);
            Assert.Contains(hash, text, StringComparison.Ordinal);
            Assert.Contains((await c.PostAsync("sys/audit-hash/file", new { input = child })).Data["hash"]!.GetValue<string>(), text, StringComparison.Ordinal);

            var verified = (await c.PostAsync("sys/audit-verify")).Expect(200).Data;
            Assert.True(verified["valid"]!.GetValue<bool>(), verified.ToJsonString());
            Assert.True(verified["macs_checked"]!.GetValue<bool>());
            Assert.Equal("file", (await c.GetAsync("sys/audit")).Expect(200).Data["file/"]!["type"]!.GetValue<string>());
            (await c.PostAsync("sys/audit-verify", token: child)).Expect(403);
        }

        // After a restart the chain continues in the same file.
        var entriesBefore = AuditLogVerifier.Verify(log).Entries;
        await using (var again = await TestKms.StartAsync(o => o with { AuditLogPath = log }, storage))
        {
            again.Keys.AddRange(keys);
            again.Client.Token = root;
            await again.UnsealAsync();
            (await again.Client.GetAsync("secret/data/db")).Expect(200);
        }

        var result = AuditLogVerifier.Verify(log);
        Assert.True(result.Valid, string.Join("; ", result.Problems));
        Assert.True(result.Entries > entriesBefore);
        Assert.Contains("\"notice\":\"sealed\"", await File.ReadAllTextAsync(log), StringComparison.Ordinal);
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public async Task The_running_KMS_reports_a_log_cut_or_replaced_under_it(bool inPlace)
    {
        var log = Path.Combine(_dir, "audit.log");
        await using var kms = await TestKms.StartUnsealedAsync(o => o with { AuditLogPath = log });
        var c = kms.Client;
        for (var i = 0; i < 3; i++)
        {
            (await c.PostAsync("secret/data/db", new { data = new { n = i } })).Expect(200);
        }

        var intact = (await c.PostAsync("sys/audit-verify")).Expect(200).Data;
        Assert.True(intact["valid"]!.GetValue<bool>(), intact.ToJsonString());

        // The last four entries go: a shorter copy moved over the file chains and its MACs check, but it lacks what the
        // KMS wrote since; a file cut in place is the same once the KMS writes on past the cut.
        var lines = await File.ReadAllLinesAsync(log);
        var kept = lines[..^4];
        if (inPlace)
        {
            await using var file = new FileStream(log, FileMode.Open, FileAccess.Write, FileShare.ReadWrite);
            file.SetLength(kept.Sum(l => System.Text.Encoding.UTF8.GetByteCount(l) + 1));
        }
        else
        {
            var copy = Path.Combine(_dir, "copy.log");
            await File.WriteAllLinesAsync(copy, kept);
            File.Move(copy, log, overwrite: true);
            Assert.True(AuditLogVerifier.Verify(log).Valid);
        }

        var cut = (await c.PostAsync("sys/audit-verify")).Expect(200).Data;
        Assert.False(cut["valid"]!.GetValue<bool>(), cut.ToJsonString());
        Assert.Contains(cut["problems"]!.AsArray(), p => p!.GetValue<string>().Contains("truncated or replaced", StringComparison.Ordinal));
    }

    [Fact]
    public async Task Verifying_a_log_moved_away_under_the_running_kms_is_a_clear_400()
    {
        // logrotate without copytruncate renames the file; the KMS keeps writing to it under its new name.
        var log = Path.Combine(_dir, "audit.log");
        await using var kms = await TestKms.StartUnsealedAsync(o => o with { AuditLogPath = log });
        var c = kms.Client;
        File.Move(log, log + ".1");
        var response = await c.PostAsync("sys/audit-verify");
        Assert.Equal(400, response.Status);
        Assert.Contains("cannot be read", response.Body!.ToJsonString(), StringComparison.Ordinal);
        Assert.True(AuditLogVerifier.Verify(log + ".1").Valid);
    }

    [Theory]
    [InlineData("auth/attest/challenge")]
    [InlineData("secret/data/x")]
    public async Task A_body_of_many_small_values_without_a_token_does_not_blow_up_the_log(string path)
    {
        var log = Path.Combine(_dir, "audit.log");
        await using var kms = await TestKms.StartUnsealedAsync(o => o with { AuditLogPath = log });
        var c = kms.Client;

        // Just under the 1 MiB body limit: about 520,000 values, each of which used to become a 76-character HMAC
        // in the request entry and again in the response entry (some 80 MB), before any token is looked at.
        var root = c.Token;
        var big = Zeros((1024 * 1024 - 16) / 2);
        var before = new FileInfo(log).Length;
        c.Token = null;
        var status = (await c.SendAsync("POST", path, big)).Status;
        Assert.True(status is 400 or 403 or 404, $"status {status}");
        var grown = new FileInfo(log).Length - before;
        Assert.True(grown < 1024 * 1024, $"the log grew by {grown} bytes");

        // Such entries say the data was cut and carry one HMAC of the whole body, which an auditor can check (with a
        // body small enough to be sent to sys/audit-hash as a value).
        var small = Zeros(AuditRecorder.MaxHashedLeaves + 1);
        await c.SendAsync("POST", path, small);
        c.Token = root;
        var hash = (await c.PostAsync("sys/audit-hash/file", new { input = small })).Expect(200).Data["hash"]!.GetValue<string>();
        var entries = (await File.ReadAllLinesAsync(log)).Select(l => JsonNode.Parse(l)!).Where(e => (string?)e["request"]?["path"] == path).ToList();
        Assert.NotEmpty(entries);
        Assert.All(entries, e =>
        {
            Assert.Null(e["request"]!["data"]);
            Assert.True(e["request"]!["data_truncated"]!.GetValue<bool>());
            Assert.StartsWith("hmac-sha256:", e["request"]!["data_hash"]!.GetValue<string>(), StringComparison.Ordinal);
        });
        Assert.Equal(hash, entries[^1]["request"]!["data_hash"]!.GetValue<string>());
        Assert.True(AuditLogVerifier.Verify(log).Valid);
    }

    [Fact]
    public async Task Ordinary_data_is_still_hashed_value_by_value()
    {
        var log = Path.Combine(_dir, "audit.log");
        await using var kms = await TestKms.StartUnsealedAsync(o => o with { AuditLogPath = log });
        var c = kms.Client;
        (await c.PostAsync("secret/data/db", new { data = new { password = "pw", n = 7, list = Enumerable.Range(0, AuditRecorder.MaxHashedLeaves - 3) } })).Expect(200);

        var hash = async (string v) => (await c.PostAsync("sys/audit-hash/file", new { input = v })).Expect(200).Data["hash"]!.GetValue<string>();
        var entry = (await File.ReadAllLinesAsync(log)).Select(l => JsonNode.Parse(l)!).First(e => (string?)e["type"] == "request" && (string?)e["request"]?["path"] == "secret/data/db");
        var data = entry["request"]!["data"]!["data"]!;
        Assert.Equal(await hash("pw"), data["password"]!.GetValue<string>());
        Assert.Equal(await hash("7"), data["n"]!.GetValue<string>());
        Assert.Equal(await hash("996"), data["list"]![AuditRecorder.MaxHashedLeaves - 4]!.GetValue<string>());
        Assert.Null(entry["request"]!["data_truncated"]);
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public async Task A_request_failed_by_storage_still_gets_its_response_entry(bool standby)
    {
        // A full disk (any unexpected exception) or a deposed HA node's refused write: the request line must be
        // followed by a response line carrying a generic error, and the client's answer is what it was (500 or 503).
        var log = Path.Combine(_dir, "audit.log");
        var storage = new FailingStorage();
        await using var kms = await TestKms.StartUnsealedAsync(o => o with { AuditLogPath = log }, physical: storage);
        var c = kms.Client;
        (await c.PostAsync("secret/data/ok", new { data = new { n = 1 } })).Expect(200);

        storage.Fail = standby ? new Morphisms.Kms.HighAvailability.StandbyWriteException() : new IOException("No space left on device at /var/lib/kms/secret-path");
        var status = (await c.PostAsync("secret/data/db", new { data = new { password = "pw" } })).Status;
        storage.Fail = null;
        Assert.Equal(standby ? 503 : 500, status);

        var entries = (await File.ReadAllLinesAsync(log)).Select(l => JsonNode.Parse(l)!).Where(e => (string?)e["request"]?["path"] == "secret/data/db").ToList();
        Assert.Equal(["request", "response"], entries.Select(e => (string?)e["type"]));
        Assert.Equal(status, entries[1]["response"]!["status"]!.GetValue<int>());
        var error = entries[1]["error"]!.GetValue<string>();
        Assert.DoesNotContain("/var/lib", error, StringComparison.Ordinal);
        Assert.Contains(standby ? "not the active node" : "internal error", error, StringComparison.Ordinal);
        var verified = (await c.PostAsync("sys/audit-verify")).Expect(200).Data;
        Assert.True(verified["valid"]!.GetValue<bool>(), verified.ToJsonString());
    }

    [Fact]
    public async Task A_response_entry_that_cannot_be_written_does_not_mask_the_handlers_failure()
    {
        // The handler fails on storage and the audit log refuses the response line as well (it was closed under the
        // request): the client still gets the handler's 500, not the log's failure (a 503 'sealed').
        var log = Path.Combine(_dir, "audit.log");
        var storage = new FailingStorage();
        await using var kms = await TestKms.StartUnsealedAsync(o => o with { AuditLogPath = log }, physical: storage);
        var c = kms.Client;
        var state = kms.Server.Core.Acquire()!;
        var audit = state.Audit!;
        state.Release();
        storage.Fail = new IOException("No space left on device");
        storage.OnFail = audit.Dispose;
        var response = await c.PostAsync("secret/data/db", new { data = new { password = "pw" } });
        Assert.Equal(500, response.Status);
        Assert.Contains("internal error", response.Body!.ToJsonString(), StringComparison.Ordinal);
    }

    /// <summary>In-memory storage whose writes throw <see cref="Fail"/> while it is set (after running <see cref="OnFail"/>).</summary>
    private sealed class FailingStorage : ForwardingStorage
    {
        public Exception? Fail { get; set; }

        public Action? OnFail { get; set; }

        public override Task PutAsync(string key, ReadOnlyMemory<byte> value, CancellationToken cancellationToken = default)
        {
            Check();
            return Inner.PutAsync(key, value, cancellationToken);
        }

        public override Task DeleteAsync(string key, CancellationToken cancellationToken = default)
        {
            Check();
            return Inner.DeleteAsync(key, cancellationToken);
        }

        public override Task TransactAsync(IReadOnlyList<StorageOperation> operations, CancellationToken cancellationToken = default)
        {
            Check();
            return Inner.TransactAsync(operations, cancellationToken);
        }

        private void Check()
        {
            if (Fail is { } e)
            {
                OnFail?.Invoke();
                throw e;
            }
        }
    }

    /// <summary>A body <c>{"a":[0,0,…]}</c> with <paramref name="count"/> zeros, compact as a client would send it.</summary>
    private static string Zeros(int count) => "{\"a\":[" + string.Join(",", Enumerable.Repeat("0", count)) + "]}";

    public void Dispose() => Directory.Delete(_dir, recursive: true);
}
