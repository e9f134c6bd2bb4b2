using System.Net.Http.Headers;
using System.Text;
using Morphisms.Kms.Http;

namespace Morphisms.Kms.Tests.Http;

/// <summary>Malformed input at every writing endpoint: always a 4xx that names the problem, never a 500, never a write.</summary>
public class BadInputTests
{
    private static readonly (string Method, string Path)[] Endpoints =
    [
        ("PUT", "sys/init"), ("PUT", "sys/unseal"), ("PUT", "sys/seal"), ("PUT", "sys/rotate"),
        ("POST", "sys/mounts/fuzz"), ("PUT", "sys/policy/fuzz"), ("PUT", "sys/policies/acl/fuzz"), ("POST", "sys/capabilities-self"),
        ("POST", "sys/capabilities"), ("POST", "sys/audit-verify"), ("POST", "sys/audit-hash/file"),
        ("POST", "auth/token/create"), ("POST", "auth/token/create-orphan"), ("POST", "auth/token/lookup"), ("POST", "auth/token/lookup-self"),
        ("POST", "auth/token/lookup-accessor"), ("POST", "auth/token/renew"), ("POST", "auth/token/renew-self"), ("POST", "auth/token/renew-accessor"),
        ("POST", "auth/token/revoke"), ("POST", "auth/token/revoke-self"), ("POST", "auth/token/revoke-accessor"), ("POST", "auth/token/revoke-orphan"),
        ("POST", "secret/config"), ("POST", "secret/data/fuzz"), ("PATCH", "secret/data/fuzz"), ("POST", "secret/metadata/fuzz"),
        ("POST", "secret/delete/fuzz"), ("POST", "secret/undelete/fuzz"), ("POST", "secret/destroy/fuzz"),
        ("PUT", "sys/rekey/init"), ("PUT", "sys/rekey/update"), ("PUT", "sys/rekey/verify"), ("POST", "sys/storage/snapshot"),
        ("POST", "sys/storage/snapshot-force"),
    ];

    // A bare `null` is not here: Vault reads it as no data (A_json_null_body_is_no_data_as_in_vault).
    private static readonly byte[][] MalformedBodies =
    [
        "{"u8.ToArray(), "}"u8.ToArray(), "[]"u8.ToArray(), "\"text\""u8.ToArray(), "42"u8.ToArray(), "true"u8.ToArray(),
        "{\"a\":}"u8.ToArray(), "{\"a\" 1}"u8.ToArray(), "{'a': 1}"u8.ToArray(), "{\"a\":1,}"u8.ToArray(), "{\"a\":1}{"u8.ToArray(),
        "{\"a\":1,\"a\":2}"u8.ToArray(), [0xFF, 0xFE, 0x7B], "{\"a\":\"\\uD800\"x}"u8.ToArray(), "\u0000"u8.ToArray(),
        Encoding.UTF8.GetBytes(new string('[', 5000)), Encoding.UTF8.GetBytes("{\"a\":" + new string('[', 200) + new string(']', 200) + "}"),

        // Well-formed JSON, but a lone surrogate has no UTF-16 string to read: in a value, deep down, or in a name.
        "{\"format\":\"\\uD800\",\"policy\":\"\\uD800\",\"key\":\"\\uDC00x\",\"data\":{\"a\":[\"\\uD800\"]}}"u8.ToArray(),
        "{\"\\uDC00\":1}"u8.ToArray(),
    ];

    [Fact]
    public async Task Malformed_json_at_every_endpoint_is_a_400_and_writes_nothing()
    {
        await using var kms = await TestKms.StartUnsealedAsync(o => o with { AuditLogPath = null });
        var before = Snapshot(kms);
        var statuses = new List<string>();
        foreach (var (method, path) in Endpoints)
        {
            foreach (var body in MalformedBodies)
            {
                var (status, text) = await Send(kms, method, path, body, "application/json");
                Assert.True(status is 400 or 415, $"{method} {path} with {Describe(body)} answered {status}: {text}");
                Assert.Contains("\"errors\":[\"", text, StringComparison.Ordinal);
                statuses.Add($"{status}");
            }
        }

        Assert.Equal(before, Snapshot(kms));
        Assert.False(kms.Server.Sealed);
    }

    [Fact]
    public async Task Wrong_types_for_known_fields_are_400s_naming_the_field()
    {
        await using var kms = await TestKms.StartUnsealedAsync();
        var before = Snapshot(kms);
        var cases = new (string Method, string Path, string Body, string Field)[]
        {
            ("POST", "auth/token/create", """{"ttl":[1]}""", "ttl"),
            ("POST", "auth/token/create", """{"renewable":"maybe"}""", "renewable"),
            ("POST", "auth/token/create", """{"num_uses":1.5}""", "num_uses"),
            ("POST", "auth/token/create", """{"explicit_max_ttl":-5}""", "explicit_max_ttl"),
            ("POST", "auth/token/create", """{"no_parent":{}}""", "no_parent"),
            ("POST", "auth/token/create", """{"period":"99999999999h"}""", "period"),
            ("POST", "auth/token/create", """{"explicit_max_ttl":9223372036854775807}""", "explicit_max_ttl"),
            ("POST", "secret/metadata/x", """{"delete_version_after":"876000000h"}""", "delete_version_after"),
            ("POST", "auth/token/renew-self", """{"increment":"forever"}""", "increment"),
            ("POST", "auth/token/lookup", """{"token":{"a":1}}""", "token"),
            ("PUT", "sys/policies/acl/x", """{"policy":["a"]}""", "policy"),
            ("POST", "sys/mounts/x", """{"type":"kv","options":"v2"}""", "options"),
            ("POST", "secret/data/x", """{"data":{"a":1},"options":{"cas":"one"}}""", "cas"),
            ("POST", "secret/data/x", """{"data":[1,2]}""", "data"),
            ("POST", "secret/metadata/x", """{"max_versions":-1}""", "max_versions"),
            ("POST", "secret/metadata/x", """{"custom_metadata":{"a":1}}""", "custom_metadata"),
            ("POST", "secret/metadata/x", """{"delete_version_after":true}""", "delete_version_after"),
            ("POST", "secret/config", """{"cas_required":"sometimes"}""", "cas_required"),
            ("POST", "secret/destroy/x", """{"versions":[{"v":1}]}""", "versions"),
            ("PUT", "sys/unseal", """{"key":["a"]}""", "key"),
            ("PUT", "sys/unseal", """{"reset":"later"}""", "reset"),
            ("PUT", "sys/init", """{"secret_shares":"many","secret_threshold":1}""", "secret_shares"),
            ("PUT", "sys/rekey/init", """{"secret_shares":"many","secret_threshold":1}""", "secret_shares"),
            ("PUT", "sys/rekey/init", """{"secret_shares":-1,"secret_threshold":1}""", "secret_shares"),
            ("PUT", "sys/rekey/update", """{"key":[1],"nonce":"n"}""", "key"),
            ("PUT", "sys/rekey/update", """{"key":"00","nonce":{"a":1}}""", "nonce"),
            ("PUT", "sys/rekey/init", """{"secret_shares":1,"secret_threshold":1,"require_verification":"maybe"}""", "require_verification"),
            ("PUT", "sys/rekey/verify", """{"key":[1],"nonce":"n"}""", "key"),
            ("POST", "sys/storage/snapshot", """{"format":1}""", "format"),
            ("POST", "sys/storage/snapshot-force", """{"format":1}""", "format"),
            ("POST", "sys/storage/snapshot", """{"format":"morphisms-kms-snapshot/2","created_at":"2025-01-01T00:00:00.0000000Z","entries":[{"key":"a"}],"sha256":"00","hmac":"00"}""", "entries[0]"),
        };
        foreach (var (method, path, body, field) in cases)
        {
            var (status, text) = await Send(kms, method, path, Encoding.UTF8.GetBytes(body), "application/json");
            Assert.True(status == 400, $"{method} {path} {body} answered {status}: {text}");
            Assert.Contains($"'{field}'", text, StringComparison.Ordinal);
        }

        Assert.Equal(before, Snapshot(kms));
    }

    /// <summary>
    /// Go's client.Logical().Write(path, nil) sends the body <c>null</c>, which Vault decodes as no data: the request
    /// is the same as one with an empty body. Any other non-object root is still a 400.
    /// </summary>
    [Fact]
    public async Task A_json_null_body_is_no_data_as_in_vault()
    {
        await using var kms = await TestKms.StartUnsealedAsync();
        var c = kms.Client;
        (await c.PutAsync("transit/keys/k", "null")).Expect(204);
        (await c.GetAsync("transit/keys/k")).Expect(200);
        (await c.PutAsync("transit/keys/k/rotate", " null\n")).Expect(200);
        Assert.Equal(2, (await c.GetAsync("transit/keys/k")).Expect(200).Data["latest_version"]!.GetValue<int>());
        Assert.Equal(["missing required parameter 'plaintext'"], (await c.PostAsync("transit/encrypt/k", "null")).Expect(400).Errors);

        foreach (var body in new[] { "[]", "\"null\"", "0", "nul" })
        {
            Assert.Contains("JSON", (await c.PutAsync("transit/keys/other", body)).Expect(400).Errors.Single(), StringComparison.Ordinal);
        }

        (await c.GetAsync("transit/keys/other")).Expect(404);
    }

    [Fact]
    public async Task Oversized_bodies_get_413_with_a_vault_error()
    {
        await using var kms = await TestKms.StartUnsealedAsync(o => o with { MaxRequestBodyBytes = 4096 });
        var before = Snapshot(kms);
        var big = Encoding.UTF8.GetBytes("{\"data\":{\"v\":\"" + new string('x', 5000) + "\"}}");
        var (status, text) = await Send(kms, "POST", "secret/data/big", big, "application/json");
        Assert.Equal(413, status);
        Assert.Contains("request body too large: the limit is 4096 bytes", text, StringComparison.Ordinal);

        // Without Content-Length (chunked), the limit still holds.
        Assert.Equal(413, await PostRawAsync(kms, "secret/data/big", big, chunked: true));
        Assert.Equal(before, Snapshot(kms));
    }

    [Fact]
    public async Task A_path_over_the_limit_is_a_400_naming_it_and_writes_nothing()
    {
        await using var kms = await TestKms.StartUnsealedAsync();
        var c = kms.Client;

        // Counted in UTF-8 bytes after "/v1/": "secret/data/" is 12, each "é" two. PostgreSQL's index once refused
        // such keys only at the write, a 500.
        var longest = "secret/data/" + new string('a', VaultDispatcher.MaxPathBytes - 12);
        (await c.PostAsync(longest, new { data = new { v = "1" } })).Expect(200);
        var before = Snapshot(kms);
        var over = "secret/data/" + new string('a', VaultDispatcher.MaxPathBytes - 13) + "é";
        Assert.Contains($"{VaultDispatcher.MaxPathBytes + 1} bytes long, over the limit of {VaultDispatcher.MaxPathBytes}", (await c.PostAsync(over, new { data = new { v = "1" } })).Expect(400).Errors.Single(), StringComparison.Ordinal);
        (await c.GetAsync(over)).Expect(400);
        Assert.Equal(before, Snapshot(kms));
    }

    [Fact]
    public async Task Bodies_bigger_than_the_first_read_buffer_arrive_whole_up_to_the_limit()
    {
        const int Limit = 200_000;
        await using var kms = await TestKms.StartUnsealedAsync(o => o with { MaxRequestBodyBytes = Limit });
        var envelope = "{\"data\":{\"v\":\"\"}}".Length;
        var exact = new string('e', Limit - envelope);
        var chunked = string.Concat(Enumerable.Range(0, 90_000).Select(i => (char)('a' + i % 26)));
        foreach (var (path, value, chunk) in new[] { ("secret/data/exact", exact, false), ("secret/data/chunked", chunked, true) })
        {
            Assert.Equal(200, await PostRawAsync(kms, path, Encoding.UTF8.GetBytes("{\"data\":{\"v\":\"" + value + "\"}}"), chunk));
            var read = (await kms.Client.GetAsync(path)).Expect(200).Data!;
            Assert.Equal(value, read["data"]!["v"]!.GetValue<string>());
        }

        // One byte over, sent without a length: refused, and nothing written.
        var before = Snapshot(kms);
        var over = Encoding.UTF8.GetBytes("{\"data\":{\"v\":\"" + exact + "x\"}}");
        Assert.Equal(413, await PostRawAsync(kms, "secret/data/over", over, chunked: true));
        Assert.Equal(before, Snapshot(kms));
    }

    /// <summary>POSTs raw bytes with the root token, with a Content-Length or chunked; answers the status.</summary>
    private static async Task<int> PostRawAsync(TestKms kms, string path, byte[] body, bool chunked)
    {
        using var request = new HttpRequestMessage(HttpMethod.Post, "/v1/" + path) { Content = new StreamContent(new MemoryStream(body)) };
        request.Headers.Add("X-Vault-Token", kms.RootToken);
        request.Headers.TransferEncodingChunked = chunked;
        if (!chunked)
        {
            request.Content.Headers.ContentLength = body.Length;
        }

        using var response = await kms.Client.Http.SendAsync(request);
        return (int)response.StatusCode;
    }

    [Fact]
    public async Task Only_a_caller_allowed_on_a_path_learns_that_it_does_not_exist()
    {
        await using var kms = await TestKms.StartUnsealedAsync();
        var c = kms.Client;
        (await c.PostAsync("sys/mounts/team-payments", new { type = "kv", options = new { version = "2" } })).Expect(204);
        (await c.PutAsync("sys/policies/acl/payments", new { policy = """path "team-payments/*" { capabilities = ["read", "delete"] }""" })).Expect(204);
        var payments = (await c.PostAsync("auth/token/create", new { policies = new[] { "payments" } })).Expect(200).Auth["client_token"]!.GetValue<string>();
        var limited = (await c.PostAsync("auth/token/create", new { policies = new[] { "payments" }, num_uses = 1 })).Expect(200).Auth["client_token"]!.GetValue<string>();

        // Without a token (or with one that grants nothing there) a missing mount and an existing one's unsupported
        // operation look the same: 403, as Vault answers, so mount names cannot be enumerated.
        foreach (var token in new[] { "", "not-a-token" })
        {
            (await c.GetAsync("nomount/x", token)).Expect(403);
            (await c.GetAsync("team-payments/config-typo", token)).Expect(403);
            (await c.DeleteAsync("team-payments/delete/x", token)).Expect(403);
        }

        (await c.GetAsync("nomount/x", payments)).Expect(403);

        // A caller the ACL lets through learns the truth; a lookup for it spends none of a use-limited token's uses.
        Assert.StartsWith("unsupported operation", (await c.DeleteAsync("team-payments/delete/x", payments)).Expect(405).Errors[0], StringComparison.Ordinal);
        (await c.DeleteAsync("team-payments/delete/x", limited)).Expect(405);
        (await c.GetAsync("auth/token/lookup-self", limited)).Expect(200);
        Assert.StartsWith("no handler for route", (await c.GetAsync("nomount/x")).Expect(404).Errors[0], StringComparison.Ordinal);
    }

    [Fact]
    public async Task Unknown_paths_methods_and_versions_are_4xx()
    {
        await using var kms = await TestKms.StartUnsealedAsync();
        var c = kms.Client;
        Assert.StartsWith("unsupported path", (await c.GetAsync("sys/nothing-here")).Expect(404).Errors[0], StringComparison.Ordinal);
        Assert.StartsWith("unsupported path", (await c.GetAsync("auth/token/nothing")).Expect(404).Errors[0], StringComparison.Ordinal);
        Assert.StartsWith("unsupported operation", (await c.DeleteAsync("sys/init")).Expect(405).Errors[0], StringComparison.Ordinal);
        Assert.StartsWith("unsupported operation", (await c.GetAsync("auth/token/create")).Expect(405).Errors[0], StringComparison.Ordinal);
        Assert.StartsWith("unsupported method", (await c.SendAsync("BREW", "secret/data/x")).Expect(405).Errors[0], StringComparison.Ordinal);
        (await c.SendAsync("OPTIONS", "sys/health")).Expect(405);

        using var v2 = await c.Http.GetAsync("/v2/sys/health");
        Assert.Equal(404, (int)v2.StatusCode);
        Assert.Contains("/v1/", await v2.Content.ReadAsStringAsync(), StringComparison.Ordinal);
        using var root = await c.Http.GetAsync("/");
        Assert.Equal(404, (int)root.StatusCode);

        Assert.Equal(["response wrapping is not supported"], await WrapError(c));
    }

    [Fact]
    public async Task The_bare_v1_prefix_is_an_unknown_path_not_a_500()
    {
        // "/v1/{**path}" matches "/v1" itself, with no path after the prefix.
        await using var kms = await TestKms.StartUnsealedAsync();
        foreach (var (method, url) in new[] { ("GET", "/v1"), ("GET", "/v1/"), ("LIST", "/v1"), ("POST", "/v1"), ("HEAD", "/v1") })
        {
            using var request = new HttpRequestMessage(new HttpMethod(method), url);
            request.Headers.Add("X-Vault-Token", kms.RootToken);
            using var response = await kms.Client.Http.SendAsync(request);
            var text = await response.Content.ReadAsStringAsync();
            Assert.True((int)response.StatusCode == 404, $"{method} {url} answered {(int)response.StatusCode}: {text}");
            if (method != "HEAD")
            {
                Assert.Contains("\"errors\":[\"", text, StringComparison.Ordinal);
            }
        }
    }

    private static async Task<List<string>> WrapError(VaultHttp c)
    {
        using var request = new HttpRequestMessage(HttpMethod.Get, "/v1/secret/data/x");
        request.Headers.Add("X-Vault-Wrap-TTL", "5m");
        using var response = await c.Http.SendAsync(request);
        Assert.Equal(400, (int)response.StatusCode);
        var body = System.Text.Json.Nodes.JsonNode.Parse(await response.Content.ReadAsStringAsync())!;
        return [.. body["errors"]!.AsArray().Select(e => e!.GetValue<string>())];
    }

    private static async Task<(int Status, string Text)> Send(TestKms kms, string method, string path, byte[] body, string contentType)
    {
        using var request = new HttpRequestMessage(new HttpMethod(method), "/v1/" + path) { Content = new ByteArrayContent(body) };
        request.Content.Headers.ContentType = MediaTypeHeaderValue.Parse(contentType);
        request.Headers.Add("X-Vault-Token", kms.RootToken);
        using var response = await kms.Client.Http.SendAsync(request);
        return ((int)response.StatusCode, await response.Content.ReadAsStringAsync());
    }

    private static string Snapshot(TestKms kms) =>
        string.Join("\n", kms.Storage!.Snapshot().OrderBy(e => e.Key, StringComparer.Ordinal).Select(e => e.Key + "=" + Convert.ToHexString(e.Value)));

    private static string Describe(byte[] body) => body.Length > 40 ? $"{body.Length} bytes" : Convert.ToHexString(body);
}
