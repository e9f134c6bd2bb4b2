namespace Morphisms.Kms.Tests.Http;

public class PolicyApiTests
{
    [Fact]
    public async Task Policies_are_written_read_listed_and_deleted_in_both_api_shapes()
    {
        await using var kms = await TestKms.StartUnsealedAsync();
        var c = kms.Client;
        const string text = "path \"secret/data/a/*\" {\n  capabilities = [\"read\"]\n}\n";
        (await c.PutAsync("sys/policies/acl/Team-A", new { policy = text })).Expect(204);

        var acl = (await c.GetAsync("sys/policies/acl/team-a")).Expect(200).Data;
        Assert.Equal("team-a", acl["name"]!.GetValue<string>());
        Assert.Equal(text, acl["policy"]!.GetValue<string>());
        var legacy = (await c.GetAsync("sys/policy/team-a")).Expect(200).Body!;
        Assert.Equal(text, legacy["rules"]!.GetValue<string>());
        Assert.Equal(text, legacy["data"]!["rules"]!.GetValue<string>());

        var names = (await c.ListAsync("sys/policies/acl")).Expect(200).Data["keys"]!.AsArray().Select(n => n!.GetValue<string>()).ToList();
        Assert.Equal(["default", "root", "team-a"], names);
        var all = (await c.GetAsync("sys/policy")).Expect(200).Body!["policies"]!.AsArray().Select(n => n!.GetValue<string>()).ToList();
        Assert.Equal(names, all);

        (await c.PutAsync("sys/policy/sgx-app/signer", new { rules = text })).Expect(204);
        (await c.GetAsync("sys/policy/sgx-app/signer")).Expect(200);

        (await c.DeleteAsync("sys/policies/acl/team-a")).Expect(204);
        (await c.GetAsync("sys/policies/acl/team-a")).Expect(404);
        Assert.Equal(["cannot delete \"default\" policy"], (await c.DeleteAsync("sys/policy/default")).Expect(400).Errors);
        Assert.Equal(["cannot delete \"root\" policy"], (await c.DeleteAsync("sys/policy/root")).Expect(400).Errors);
        Assert.Equal(["cannot update \"root\" policy"], (await c.PutAsync("sys/policy/root", new { policy = text })).Expect(400).Errors);
    }

    /// <summary>
    /// Vault base64-decodes a policy that is valid standard base64, so clients may send it encoded; the decoded text
    /// is what is stored and read back. Line breaks in the encoding are ignored, as Go's decoder does (base64 wraps).
    /// </summary>
    [Fact]
    public async Task A_base64_encoded_policy_is_stored_decoded_as_in_vault()
    {
        await using var kms = await TestKms.StartUnsealedAsync();
        var c = kms.Client;
        const string text = "path \"secret/data/a/*\" {\n  capabilities = [\"read\"]\n}\n";
        var encoded = Convert.ToBase64String(System.Text.Encoding.UTF8.GetBytes(text));
        (await c.PutAsync("sys/policies/acl/encoded", new { policy = encoded })).Expect(204);
        Assert.Equal(text, (await c.GetAsync("sys/policies/acl/encoded")).Expect(200).Data["policy"]!.GetValue<string>());

        var wrapped = string.Join("\n", encoded.Chunk(20).Select(chunk => new string(chunk))) + "\n";
        (await c.PutAsync("sys/policy/wrapped", new { rules = wrapped })).Expect(204);
        Assert.Equal(text, (await c.GetAsync("sys/policy/wrapped")).Expect(200).Body!["rules"]!.GetValue<string>());

        var token = (await c.PostAsync("auth/token/create", new { policies = new[] { "encoded" } })).Expect(200).Auth["client_token"]!.GetValue<string>();
        var capabilities = (await c.PostAsync("sys/capabilities", new { token, paths = new[] { "secret/data/a/x" } })).Expect(200).Data;
        Assert.Equal(["read"], capabilities["secret/data/a/x"]!.AsArray().Select(x => x!.GetValue<string>()));

        // Base64 of a bad policy fails on the decoded text; base64 of bytes that are not UTF-8 is parsed as it came.
        var bad = Convert.ToBase64String(System.Text.Encoding.UTF8.GetBytes("path \"a\" {\n  capabilities = [\"fly\"]\n}"));
        Assert.Equal(["failed to parse policy: line 2: path \"a\": invalid capability \"fly\""], (await c.PutAsync("sys/policies/acl/bad", new { policy = bad })).Expect(400).Errors);
        Assert.StartsWith("failed to parse policy", (await c.PutAsync("sys/policies/acl/bad", new { policy = "/+/+" })).Expect(400).Errors.Single(), StringComparison.Ordinal);
        (await c.GetAsync("sys/policies/acl/bad")).Expect(404);
    }

    [Fact]
    public async Task Invalid_policies_are_refused_with_the_line_and_nothing_is_stored()
    {
        await using var kms = await TestKms.StartUnsealedAsync();
        var c = kms.Client;
        var bad = (await c.PutAsync("sys/policies/acl/bad", new { policy = "path \"a\" {\n  capabilities = [\"read\", \"fly\"]\n}" })).Expect(400);
        Assert.Equal(["failed to parse policy: line 2: path \"a\": invalid capability \"fly\""], bad.Errors);
        (await c.GetAsync("sys/policies/acl/bad")).Expect(404);
        Assert.Contains("'policy'", (await c.PutAsync("sys/policies/acl/bad", new { })).Expect(400).Errors[0], StringComparison.Ordinal);
        Assert.Contains("invalid policy name", (await c.PutAsync("sys/policies/acl/bad%20name", new { policy = "path \"a\" { capabilities = [\"read\"] }" })).Expect(400).Errors[0], StringComparison.Ordinal);
    }

    [Fact]
    public async Task A_token_gets_exactly_what_its_policies_grant()
    {
        await using var kms = await TestKms.StartUnsealedAsync();
        var c = kms.Client;
        (await c.PutAsync("sys/policies/acl/writer", new
        {
            policy = """
                path "secret/data/app/*" { capabilities = ["create", "read"] }
                path "secret/data/app/locked" { capabilities = ["deny"] }
                path "secret/metadata/app/" { capabilities = ["list"] }
                path "sys/seal" { capabilities = ["update"] }
                """,
        })).Expect(204);
        var token = (await c.PostAsync("auth/token/create", new { policies = new[] { "writer" } })).Expect(200).Auth["client_token"]!.GetValue<string>();

        // create, but not update: the second write to the same key needs "update".
        (await c.PostAsync("secret/data/app/one", new { data = new { a = "1" } }, token)).Expect(200);
        Assert.Equal(["permission denied"], (await c.PostAsync("secret/data/app/one", new { data = new { a = "2" } }, token)).Expect(403).Errors);
        (await c.GetAsync("secret/data/app/one", token)).Expect(200);
        (await c.DeleteAsync("secret/data/app/one", token)).Expect(403);
        (await c.PostAsync("secret/data/app/locked", new { data = new { a = "1" } }, token)).Expect(403);
        (await c.PostAsync("secret/data/other", new { data = new { a = "1" } }, token)).Expect(403);
        (await c.ListAsync("secret/metadata/app", token)).Expect(200);
        (await c.GetAsync("sys/policies/acl/writer", token)).Expect(403);

        // sys/seal is root-protected: update without sudo is not enough.
        (await c.PutAsync("sys/seal", token: token)).Expect(403);
        Assert.False(kms.Server.Sealed);

        var caps = (await c.PostAsync("sys/capabilities-self", new { paths = new[] { "secret/data/app/x", "secret/data/app/locked", "sys/seal" } }, token)).Expect(200).Data;
        Assert.Equal(["create", "read"], caps["secret/data/app/x"]!.AsArray().Select(n => n!.GetValue<string>()));
        Assert.Equal(["deny"], caps["secret/data/app/locked"]!.AsArray().Select(n => n!.GetValue<string>()));
        Assert.Equal(["root"], (await c.PostAsync("sys/capabilities-self", new { paths = new[] { "x" } })).Expect(200).Data["x"]!.AsArray().Select(n => n!.GetValue<string>()));
    }

    [Fact]
    public async Task Ui_mounts_describes_a_mount_only_to_tokens_with_a_capability_under_it()
    {
        await using var kms = await TestKms.StartUnsealedAsync();
        var c = kms.Client;
        (await c.PutAsync("sys/policies/acl/app", new { policy = """path "secret/data/app/*" { capabilities = ["read"] }""" })).Expect(204);
        var app = (await c.PostAsync("auth/token/create", new { policies = new[] { "app" } })).Expect(200).Auth["client_token"]!.GetValue<string>();
        var none = (await c.PostAsync("auth/token/create", new { policies = new[] { "default" } })).Expect(200).Auth["client_token"]!.GetValue<string>();

        // Under the mount it can use, any path of that mount resolves (as Vault's CLI asks before a kv command).
        var secret = (await c.GetAsync("sys/internal/ui/mounts/secret/app/db", app)).Expect(200).Data;
        Assert.Equal("secret/", secret["path"]!.GetValue<string>());
        Assert.Equal("kv", secret["type"]!.GetValue<string>());
        (await c.GetAsync("sys/internal/ui/mounts/secret/other", app)).Expect(200);

        // Elsewhere: 403 without the mount's type, accessor or uuid, and the same 403 for a mount that does not exist.
        foreach (var (path, token) in new[] { ("transit/keys/k", app), ("pki/issue/x", app), ("secret/app/db", none), ("nothing/here", app) })
        {
            var denied = (await c.GetAsync("sys/internal/ui/mounts/" + path, token)).Expect(403);
            Assert.StartsWith("permission denied", Assert.Single(denied.Errors), StringComparison.Ordinal);
            Assert.DoesNotContain("accessor", denied.Raw, StringComparison.Ordinal);
        }

        (await c.GetAsync("sys/internal/ui/mounts/transit/keys/k")).Expect(200);
        Assert.Contains("no mount", (await c.GetAsync("sys/internal/ui/mounts/nothing/here")).Expect(400).Errors.Single(), StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("%0A", true)]
    [InlineData("%0D%0A", true)]
    [InlineData("%0D", true)]
    [InlineData("%00", false)]
    [InlineData("%09", true)]
    [InlineData("%7F", true)]
    public async Task A_control_character_in_the_path_is_a_400_and_never_reaches_the_acl_as_another_path(string control, bool reachesTheKms)
    {
        await using var kms = await TestKms.StartUnsealedAsync();
        var c = kms.Client;
        (await c.PostAsync("secret/data/admin", new { data = new { password = "hunter2" } })).Expect(200);
        (await c.PutAsync("sys/policies/acl/reader", new
        {
            policy = """
                path "secret/data/*" { capabilities = ["read"] }
                path "secret/data/admin" { capabilities = ["deny"] }
                """,
        })).Expect(204);
        var reader = (await c.PostAsync("auth/token/create", new { policies = new[] { "reader" } })).Expect(200).Auth["client_token"]!.GetValue<string>();
        (await c.GetAsync("secret/data/admin", reader)).Expect(403);

        // Before the fix a trailing %0A matched the KV route (a regex's $ also matches before a final newline) while the
        // ACL looked up "secret/data/admin\n", which the deny does not name and the wildcard grants. Kestrel itself
        // refuses a NUL; the other characters reach the KMS decoded.
        var refused = (await c.GetAsync("secret/data/admin" + control, reader)).Expect(400);
        if (reachesTheKms)
        {
            Assert.Contains("control character", Assert.Single(refused.Errors), StringComparison.Ordinal);
        }

        Assert.DoesNotContain("hunter2", refused.Raw, StringComparison.Ordinal);
        (await c.GetAsync("secret/data/admin" + control)).Expect(400);
        (await c.PostAsync("secret/data/other" + control, new { data = new { a = "b" } })).Expect(400);
        (await c.GetAsync("secret/data/other")).Expect(404);
    }

    /// <summary>
    /// Policy names are normalised as in Vault (<c>ADMIN</c> is <c>admin</c>), but an exact deny on the normalised name
    /// still stops a token whose wildcard grants the name as sent.
    /// </summary>
    [Theory]
    [InlineData("ADMIN")]
    [InlineData("Admin")]
    [InlineData("%20admin")]
    public async Task An_exact_deny_on_a_policy_name_is_not_escaped_by_its_case_or_spaces(string sent)
    {
        await using var kms = await TestKms.StartUnsealedAsync();
        var c = kms.Client;
        const string admin = "path \"secret/*\" { capabilities = [\"read\"] }";
        (await c.PutAsync("sys/policies/acl/admin", new { policy = admin })).Expect(204);
        (await c.PutAsync("sys/policies/acl/policy-writer", new
        {
            policy = """
                path "sys/policies/acl/*" { capabilities = ["create", "read", "update", "delete"] }
                path "sys/policies/acl/admin" { capabilities = ["deny"] }
                """,
        })).Expect(204);
        var writer = (await c.PostAsync("auth/token/create", new { policies = new[] { "policy-writer" } })).Expect(200).Auth["client_token"]!.GetValue<string>();

        (await c.PutAsync("sys/policies/acl/" + sent, new { policy = "path \"*\" { capabilities = [\"sudo\"] }" }, writer)).Expect(403);
        (await c.DeleteAsync("sys/policies/acl/" + sent, writer)).Expect(403);
        (await c.GetAsync("sys/policies/acl/" + sent, writer)).Expect(403);
        Assert.Equal(admin, (await c.GetAsync("sys/policies/acl/admin")).Expect(200).Data["policy"]!.GetValue<string>());

        // What the wildcard grants still works, normalised: Team-B is team-b.
        (await c.PutAsync("sys/policies/acl/Team-B", new { policy = admin }, writer)).Expect(204);
        (await c.GetAsync("sys/policies/acl/team-b", writer)).Expect(200);
    }

    /// <summary>
    /// The ACL judges the path as sent while the mount handler trims slashes: <c>sys/mounts/secret/</c> and
    /// <c>sys/mounts//secret</c> matched only the wildcard, and unmounted <c>secret/</c> with its data.
    /// </summary>
    [Theory]
    [InlineData("secret/")]
    [InlineData("/secret")]
    [InlineData("/secret/")]
    [InlineData("secret//")]
    public async Task An_exact_deny_on_a_mount_is_not_escaped_by_slashes(string sent)
    {
        await using var kms = await TestKms.StartUnsealedAsync();
        var c = kms.Client;
        (await c.PostAsync("secret/data/db", new { data = new { password = "pw" } })).Expect(200);
        (await c.PutAsync("sys/policies/acl/mount-admin", new
        {
            policy = """
                path "sys/mounts/*" { capabilities = ["create", "read", "update", "delete"] }
                path "sys/mounts/secret" { capabilities = ["deny"] }
                """,
        })).Expect(204);
        var admin = (await c.PostAsync("auth/token/create", new { policies = new[] { "mount-admin" } })).Expect(200).Auth["client_token"]!.GetValue<string>();

        (await c.DeleteAsync("sys/mounts/" + sent, admin)).Expect(403);
        (await c.PostAsync("sys/mounts/" + sent, new { type = "transit" }, admin)).Expect(403);
        (await c.GetAsync("sys/mounts/" + sent, admin)).Expect(403);
        Assert.Equal("pw", (await c.GetAsync("secret/data/db")).Expect(200).Data["data"]!["password"]!.GetValue<string>());

        // What the wildcard grants still works, with the trailing slash Vault's CLI sends.
        (await c.PostAsync("sys/mounts/other/", new { type = "kv", options = new { version = "2" } }, admin)).Expect(204);
        (await c.GetAsync("sys/mounts/other/", admin)).Expect(200);
        (await c.DeleteAsync("sys/mounts/other/", admin)).Expect(204);
    }

    [Fact]
    public async Task An_exact_deny_on_the_audit_hash_is_not_escaped_by_a_trailing_slash()
    {
        var dir = Directory.CreateTempSubdirectory("kms-audit-acl-").FullName;
        try
        {
            await using var kms = await TestKms.StartUnsealedAsync(o => o with { AuditLogPath = Path.Combine(dir, "audit.log") });
            var c = kms.Client;
            (await c.PutAsync("sys/policies/acl/hasher", new
            {
                policy = """
                    path "sys/audit-hash/*" { capabilities = ["update"] }
                    path "sys/audit-hash/file" { capabilities = ["deny"] }
                    """,
            })).Expect(204);
            var token = (await c.PostAsync("auth/token/create", new { policies = new[] { "hasher" } })).Expect(200).Auth["client_token"]!.GetValue<string>();

            (await c.PostAsync("sys/audit-hash/file", new { input = "x" }, token)).Expect(403);
            (await c.PostAsync("sys/audit-hash/file/", new { input = "x" }, token)).Expect(403);
            (await c.PostAsync("sys/audit-hash/file//", new { input = "x" }, token)).Expect(403);
            (await c.PostAsync("sys/audit-hash/file/", new { input = "x" })).Expect(200);
        }
        finally
        {
            Directory.Delete(dir, recursive: true);
        }
    }
}
