using System.Text.Json.Nodes;

namespace Morphisms.Kms.Tests.Http;

public class TokenApiTests
{
    private const string AppPolicy = """path "secret/data/app/*" { capabilities = ["create", "read", "update"] }""";

    [Fact]
    public async Task Create_lookup_renew_and_revoke_a_child_token()
    {
        await using var kms = await TestKms.StartUnsealedAsync();
        var c = kms.Client;
        (await c.PutAsync("sys/policies/acl/app", new { policy = AppPolicy })).Expect(204);

        var created = (await c.PostAsync("auth/token/create", new { policies = new[] { "app" }, ttl = "30m", explicit_max_ttl = "2h", meta = new { team = "blue" }, display_name = "ci" })).Expect(200);
        var auth = created.Auth;
        var token = auth["client_token"]!.GetValue<string>();
        var accessor = auth["accessor"]!.GetValue<string>();
        Assert.Equal(["app", "default"], auth["policies"]!.AsArray().Select(p => p!.GetValue<string>()));
        Assert.Equal(1800, auth["lease_duration"]!.GetValue<long>());
        Assert.True(auth["renewable"]!.GetValue<bool>());
        Assert.False(auth["orphan"]!.GetValue<bool>());
        Assert.Equal("blue", auth["metadata"]!["team"]!.GetValue<string>());
        Assert.Null(created.Body!["data"]);
        Assert.Equal("", created.Body["lease_id"]!.GetValue<string>());

        var self = (await c.GetAsync("auth/token/lookup-self", token)).Expect(200).Data;
        Assert.Equal(token, self["id"]!.GetValue<string>());
        Assert.Equal("token-ci", self["display_name"]!.GetValue<string>());
        Assert.Equal(1800, self["ttl"]!.GetValue<long>());
        Assert.Equal(7200, self["explicit_max_ttl"]!.GetValue<long>());
        Assert.Equal("auth/token/create", self["path"]!.GetValue<string>());

        var byAccessor = (await c.PostAsync("auth/token/lookup-accessor", new { accessor })).Expect(200).Data;
        Assert.Equal("", byAccessor["id"]!.GetValue<string>());
        Assert.Equal(["app", "default"], byAccessor["policies"]!.AsArray().Select(p => p!.GetValue<string>()));

        kms.Time.Advance(TimeSpan.FromMinutes(20));
        Assert.Equal(600, (await c.PostAsync("auth/token/lookup", new { token })).Expect(200).Data["ttl"]!.GetValue<long>());
        var renewed = (await c.PostAsync("auth/token/renew-self", new { increment = "1h" }, token)).Expect(200);
        Assert.Equal(3600, renewed.Auth["lease_duration"]!.GetValue<long>());
        Assert.Equal(token, renewed.Auth["client_token"]!.GetValue<string>());
        var capped = (await c.PostAsync("auth/token/renew", new { token, increment = 7200 })).Expect(200);
        Assert.Equal(7200 - 1200, capped.Auth["lease_duration"]!.GetValue<long>());
        Assert.Contains("capped", capped.Body!["warnings"]![0]!.GetValue<string>(), StringComparison.Ordinal);

        (await c.PostAsync("auth/token/revoke-self", token: token)).Expect(204);
        Assert.Equal(["permission denied"], (await c.GetAsync("auth/token/lookup-self", token)).Expect(403).Errors);
        Assert.Equal(["bad token"], (await c.PostAsync("auth/token/lookup", new { token })).Expect(403).Errors);
        (await c.PostAsync("auth/token/revoke", new { token })).Expect(204);
    }

    [Fact]
    public async Task Expired_and_exhausted_tokens_are_refused()
    {
        await using var kms = await TestKms.StartUnsealedAsync();
        var c = kms.Client;
        var shortLived = await Create(c, new { ttl = "60s" });
        var twoUses = await Create(c, new { num_uses = 2 });

        (await c.GetAsync("auth/token/lookup-self", shortLived)).Expect(200);
        kms.Time.Advance(TimeSpan.FromSeconds(61));
        (await c.GetAsync("auth/token/lookup-self", shortLived)).Expect(403);

        Assert.Equal(1, (await c.GetAsync("auth/token/lookup-self", twoUses)).Expect(200).Data["num_uses"]!.GetValue<int>());
        (await c.GetAsync("auth/token/lookup-self", twoUses)).Expect(200);
        (await c.GetAsync("auth/token/lookup-self", twoUses)).Expect(403);

        (await c.GetAsync("auth/token/lookup-self", "hvs.made-up")).Expect(403);
        (await c.GetAsync("auth/token/lookup-self", "")).Expect(403);
    }

    /// <summary>
    /// As in Vault, a use-limited token cannot create tokens: a one-time root token would otherwise spend its one use on
    /// an unlimited, non-expiring root token. Its last use included (its count is then spent).
    /// </summary>
    [Fact]
    public async Task A_use_limited_token_cannot_create_child_or_orphan_tokens()
    {
        await using var kms = await TestKms.StartUnsealedAsync();
        var c = kms.Client;
        var twoUses = await Create(c, new { policies = new[] { "root" }, num_uses = 2 });

        var refused = (await c.PostAsync("auth/token/create-orphan", new { policies = new[] { "root" } }, twoUses)).Expect(400);
        Assert.Equal("restricted use token cannot generate child tokens", refused.Errors.Single());
        (await c.PostAsync("auth/token/create", new { }, twoUses)).Expect(400); // its last use
        (await c.GetAsync("auth/token/lookup-self", twoUses)).Expect(403);
    }

    [Fact]
    public async Task Revoking_a_parent_revokes_children_and_orphans_survive()
    {
        await using var kms = await TestKms.StartUnsealedAsync();
        var c = kms.Client;
        (await c.PutAsync("sys/policy/creator", new { policy = """path "auth/token/create*" { capabilities = ["update"] }""" })).Expect(204);
        var parent = await Create(c, new { policies = new[] { "creator" } });
        var child = await Create(c, new { }, parent);
        var grandchild = await Create(c, new { }, child);
        var orphan = (await c.PostAsync("auth/token/create-orphan", new { policies = new[] { "creator" } }, parent)).Expect(200);
        Assert.True(orphan.Auth["orphan"]!.GetValue<bool>());

        (await c.PostAsync("auth/token/revoke", new { token = parent })).Expect(204);
        (await c.GetAsync("auth/token/lookup-self", child)).Expect(403);
        (await c.GetAsync("auth/token/lookup-self", grandchild)).Expect(403);
        (await c.GetAsync("auth/token/lookup-self", orphan.Auth["client_token"]!.GetValue<string>())).Expect(200);
    }

    [Fact]
    public async Task Child_policies_must_be_a_subset_unless_root_or_sudo()
    {
        await using var kms = await TestKms.StartUnsealedAsync();
        var c = kms.Client;
        (await c.PutAsync("sys/policy/creator", new { policy = """path "auth/token/create" { capabilities = ["update"] }""" })).Expect(204);
        (await c.PutAsync("sys/policy/sudoer", new { policy = """path "auth/token/create" { capabilities = ["update", "sudo"] }""" })).Expect(204);
        (await c.PutAsync("sys/policy/other", new { policy = """path "x" { capabilities = ["read"] }""" })).Expect(204);
        var creator = await Create(c, new { policies = new[] { "creator" } });
        var sudoer = await Create(c, new { policies = new[] { "sudoer" } });

        Assert.Equal(["child policies must be subset of parent"], (await c.PostAsync("auth/token/create", new { policies = new[] { "other" } }, creator)).Expect(400).Errors);
        Assert.Contains("non-root", (await c.PostAsync("auth/token/create", new { policies = new[] { "root" } }, creator)).Expect(400).Errors[0], StringComparison.Ordinal);
        Assert.Contains("orphan", (await c.PostAsync("auth/token/create", new { no_parent = true }, creator)).Expect(400).Errors[0], StringComparison.Ordinal);
        Assert.Contains("token id", (await c.PostAsync("auth/token/create", new { id = "custom" }, creator)).Expect(400).Errors[0], StringComparison.Ordinal);
        var inherited = (await c.PostAsync("auth/token/create", new { }, creator)).Expect(200);
        Assert.Equal(["creator", "default"], inherited.Auth["policies"]!.AsArray().Select(p => p!.GetValue<string>()));
        var noDefault = (await c.PostAsync("auth/token/create", new { policies = new[] { "creator" }, no_default_policy = true }, creator)).Expect(200);
        Assert.Equal(["creator"], noDefault.Auth["policies"]!.AsArray().Select(p => p!.GetValue<string>()));

        // A parent without `default` (like every function token) neither hands it on nor may request it.
        var withoutDefault = noDefault.Auth["client_token"]!.GetValue<string>();
        var child = (await c.PostAsync("auth/token/create", new { policies = new[] { "creator" } }, withoutDefault)).Expect(200);
        Assert.Equal(["creator"], child.Auth["policies"]!.AsArray().Select(p => p!.GetValue<string>()));
        var inheritedWithout = (await c.PostAsync("auth/token/create", new { }, withoutDefault)).Expect(200);
        Assert.Equal(["creator"], inheritedWithout.Auth["policies"]!.AsArray().Select(p => p!.GetValue<string>()));
        Assert.Equal(["child policies must be subset of parent"], (await c.PostAsync("auth/token/create", new { policies = new[] { "creator", "default" } }, withoutDefault)).Expect(400).Errors);

        (await c.PostAsync("auth/token/create", new { policies = new[] { "other" } }, sudoer)).Expect(200);
        var custom = (await c.PostAsync("auth/token/create", new { id = "my-custom-token", policies = new[] { "other" } })).Expect(200);
        Assert.Equal("my-custom-token", custom.Auth["client_token"]!.GetValue<string>());
        (await c.GetAsync("auth/token/lookup-self", "my-custom-token")).Expect(200);
        Assert.Contains("already in use", (await c.PostAsync("auth/token/create", new { id = "my-custom-token" })).Expect(400).Errors[0], StringComparison.Ordinal);
    }

    /// <summary>
    /// Go's api.TokenCreateRequest (the vault CLI's `token create`, api.Auth().Token().Create) always sends
    /// display_name, num_uses, type and entity_alias, unset as "" or 0; Vault reads "" (and an empty list) as not
    /// given, and so does the KMS, for the root and for a token without sudo alike. Only a real value is refused.
    /// </summary>
    [Fact]
    public async Task Empty_values_of_unsupported_fields_as_go_clients_send_them_are_not_given()
    {
        await using var kms = await TestKms.StartUnsealedAsync();
        var c = kms.Client;
        (await c.PutAsync("sys/policy/app", new { policy = AppPolicy })).Expect(204);
        (await c.PutAsync("sys/policy/creator", new { policy = """path "auth/token/create" { capabilities = ["update"] }""" })).Expect(204);
        const string GoBody = """{"policies":["app"],"entity_alias":"","type":"","id":""}""";
        var created = (await c.PostAsync("auth/token/create", GoBody)).Expect(200).Auth;
        Assert.Equal(["app", "default"], created["policies"]!.AsArray().Select(p => p!.GetValue<string>()));
        Assert.StartsWith("hvs.", created["client_token"]!.GetValue<string>(), StringComparison.Ordinal);

        var creator = await Create(c, new { policies = new[] { "creator" } });
        const string GoDefaults = """{"display_name":"","num_uses":0,"type":"","entity_alias":"","id":"","role_name":"","bound_cidrs":[]}""";
        var child = (await c.PostAsync("auth/token/create", GoDefaults, creator)).Expect(200).Auth;
        Assert.Equal(["creator", "default"], child["policies"]!.AsArray().Select(p => p!.GetValue<string>()));

        Assert.Equal(["parameter 'entity_alias' is not supported"], (await c.PostAsync("auth/token/create", new { entity_alias = "alias" })).Expect(400).Errors);
        Assert.Equal(["parameter 'role_name' is not supported"], (await c.PostAsync("auth/token/create", new { role_name = "r" })).Expect(400).Errors);
        Assert.Equal(["parameter 'bound_cidrs' is not supported"], (await c.PostAsync("auth/token/create", new { bound_cidrs = new[] { "10.0.0.0/8" } })).Expect(400).Errors);
        Assert.Contains("token id", (await c.PostAsync("auth/token/create", new { id = "custom" }, creator)).Expect(400).Errors[0], StringComparison.Ordinal);
    }

    [Fact]
    public async Task Accessors_look_up_renew_revoke_and_list()
    {
        await using var kms = await TestKms.StartUnsealedAsync();
        var c = kms.Client;
        var created = (await c.PostAsync("auth/token/create", new { ttl = "10m" })).Expect(200).Auth;
        var accessor = created["accessor"]!.GetValue<string>();
        var keys = (await c.ListAsync("auth/token/accessors")).Expect(200).Data["keys"]!.AsArray().Select(k => k!.GetValue<string>()).ToList();
        Assert.Contains(accessor, keys);

        (await c.PostAsync("auth/token/renew-accessor", new { accessor, increment = "20m" })).Expect(200);
        Assert.Equal(1200, (await c.PostAsync("auth/token/lookup-accessor", new { accessor })).Data["ttl"]!.GetValue<long>());
        (await c.PostAsync("auth/token/revoke-accessor", new { accessor })).Expect(204);
        Assert.Equal(["invalid accessor"], (await c.PostAsync("auth/token/lookup-accessor", new { accessor })).Expect(400).Errors);
        (await c.GetAsync("auth/token/lookup-self", created["client_token"]!.GetValue<string>())).Expect(403);
    }

    [Fact]
    public async Task The_bearer_header_is_accepted_and_wrong_types_name_the_field()
    {
        await using var kms = await TestKms.StartUnsealedAsync();
        using var request = new HttpRequestMessage(HttpMethod.Get, "/v1/auth/token/lookup-self");
        request.Headers.Authorization = new("Bearer", kms.RootToken);
        using var response = await kms.Client.Http.SendAsync(request);
        Assert.Equal(200, (int)response.StatusCode);

        var c = kms.Client;
        Assert.Contains("'ttl'", (await c.PostAsync("auth/token/create", new { ttl = new { } })).Expect(400).Errors[0], StringComparison.Ordinal);
        Assert.Contains("'ttl'", (await c.PostAsync("auth/token/create", new { ttl = "soon" })).Expect(400).Errors[0], StringComparison.Ordinal);
        Assert.Contains("'policies'", (await c.PostAsync("auth/token/create", new { policies = 5 })).Expect(400).Errors[0], StringComparison.Ordinal);
        Assert.Contains("'num_uses'", (await c.PostAsync("auth/token/create", new { num_uses = -1 })).Expect(400).Errors[0], StringComparison.Ordinal);
        Assert.Contains("'meta'", (await c.PostAsync("auth/token/create", new { meta = new { a = 1 } })).Expect(400).Errors[0], StringComparison.Ordinal);
        Assert.Contains("unrecognized parameters: [colour]", (await c.PostAsync("auth/token/create", new { colour = "red" })).Expect(200).Body!["warnings"]![0]!.GetValue<string>(), StringComparison.Ordinal);
    }

    [Fact]
    public async Task The_active_node_revokes_expired_tokens_on_its_clock_though_nobody_presents_them()
    {
        await using var kms = await TestKms.StartUnsealedAsync(o => o with { TokenSweepInterval = TimeSpan.FromMinutes(1) });
        var c = kms.Client;
        int Stored() => kms.Storage!.Snapshot().Keys.Count(k => k.StartsWith("sys/token/id/", StringComparison.Ordinal));
        var before = Stored();
        var shortLived = await Create(c, new { ttl = "30s" });
        await Create(c, new { ttl = "10m" }, shortLived); // a child outliving its parent goes with it
        var longLived = await Create(c, new { ttl = "1h" });
        Assert.Equal(before + 3, Stored());

        kms.Time.Advance(TimeSpan.FromMinutes(1));
        var deadline = DateTime.UtcNow + TimeSpan.FromSeconds(30);
        while (Stored() != before + 1 && DateTime.UtcNow < deadline)
        {
            await Task.Delay(20);
        }

        Assert.Equal(before + 1, Stored());
        (await c.GetAsync("auth/token/lookup-self", longLived)).Expect(200);
        Assert.Equal(before + 1, (await c.SendAsync("LIST", "auth/token/accessors")).Expect(200).Data["keys"]!.AsArray().Count);
    }

    [Fact]
    public async Task Requested_policy_names_are_validated_as_the_policy_store_names_them()
    {
        await using var kms = await TestKms.StartUnsealedAsync();
        var c = kms.Client;
        (await c.PutAsync("sys/policies/acl/sudoer", new { policy = """path "auth/token/create" { capabilities = ["update", "sudo"] }""" })).Expect(204);
        var sudoer = await Create(c, new { policies = new[] { "sudoer" } });

        // A name no policy can have (a NUL, which PostgreSQL's text refuses, made every request of the token a 500 there).
        foreach (var bad in new[] { "x\u0000", "../etc", "a b", new string('a', 129) })
        {
            foreach (var caller in new[] { kms.RootToken, sudoer })
            {
                var refused = (await c.PostAsync("auth/token/create", new { policies = new[] { "ok", bad } }, caller)).Expect(400);
                Assert.Contains("'policies[1]'", Assert.Single(refused.Errors), StringComparison.Ordinal);
            }
        }

        Assert.Contains("'policies[0]'", (await c.PostAsync("auth/token/create", new { policies = "x\u0001,ok" })).Expect(400).Errors[0], StringComparison.Ordinal);

        // Names are normalised as the store names them; empty entries are dropped, as Vault does.
        var created = (await c.PostAsync("auth/token/create", new { policies = new[] { " Team-A ", "", "ok" } }, sudoer)).Expect(200);
        Assert.Equal(["default", "ok", "team-a"], created.Auth["policies"]!.AsArray().Select(p => p!.GetValue<string>()));
    }

    private static async Task<string> Create(VaultHttp c, object body, string? as_ = null) =>
        (await c.PostAsync("auth/token/create", body, as_)).Expect(200).Auth["client_token"]!.GetValue<string>();
}
