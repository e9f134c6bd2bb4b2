using System.Text.Json.Nodes;

namespace Morphisms.Kms.Tests.Kv;

public class KvV2ApiTests
{
    [Fact]
    public async Task Versions_accumulate_and_each_version_reads_back()
    {
        await using var kms = await TestKms.StartUnsealedAsync();
        var c = kms.Client;
        var v1 = (await c.PostAsync("secret/data/db", new { data = new { password = "p1", port = 5432, nested = new { a = true } } })).Expect(200).Data;
        Assert.Equal(1, v1["version"]!.GetValue<int>());
        Assert.Equal("", v1["deletion_time"]!.GetValue<string>());
        Assert.False(v1["destroyed"]!.GetValue<bool>());
        Assert.Equal("2026-11-22T12:00:00.0000000Z", v1["created_time"]!.GetValue<string>());

        kms.Time.Advance(TimeSpan.FromMinutes(1));
        Assert.Equal(2, (await c.PutAsync("secret/data/db", new { data = new { password = "p2" } })).Expect(200).Data["version"]!.GetValue<int>());

        var latest = (await c.GetAsync("secret/data/db")).Expect(200).Data;
        Assert.Equal("p2", latest["data"]!["password"]!.GetValue<string>());
        Assert.Equal(2, latest["metadata"]!["version"]!.GetValue<int>());
        var first = (await c.GetAsync("secret/data/db?version=1")).Expect(200).Data;
        Assert.Equal(5432, first["data"]!["port"]!.GetValue<int>());
        Assert.True(first["data"]!["nested"]!["a"]!.GetValue<bool>());
        (await c.GetAsync("secret/data/db?version=3")).Expect(404);
        (await c.GetAsync("secret/data/missing")).Expect(404);
        Assert.Contains("'version'", (await c.GetAsync("secret/data/db?version=x")).Expect(400).Errors[0], StringComparison.Ordinal);

        var meta = (await c.GetAsync("secret/metadata/db")).Expect(200).Data;
        Assert.Equal(2, meta["current_version"]!.GetValue<int>());
        Assert.Equal(0, meta["oldest_version"]!.GetValue<int>());
        Assert.Equal("0s", meta["delete_version_after"]!.GetValue<string>());
        Assert.Equal(["1", "2"], meta["versions"]!.AsObject().Select(p => p.Key));
        Assert.Equal("2026-11-22T12:01:00.0000000Z", meta["updated_time"]!.GetValue<string>());
    }

    [Fact]
    public async Task Check_and_set_is_enforced()
    {
        await using var kms = await TestKms.StartUnsealedAsync();
        var c = kms.Client;
        (await c.PostAsync("secret/data/k", new { options = new { cas = 0 }, data = new { v = "1" } })).Expect(200);
        Assert.Equal(["check-and-set parameter did not match the current version"], (await c.PostAsync("secret/data/k", new { options = new { cas = 0 }, data = new { v = "x" } })).Expect(400).Errors);
        (await c.PostAsync("secret/data/k", new { options = new { cas = 1 }, data = new { v = "2" } })).Expect(200);

        (await c.PostAsync("secret/metadata/k", new { cas_required = true, max_versions = 5 })).Expect(204);
        Assert.Equal(["check-and-set parameter required for this call"], (await c.PostAsync("secret/data/k", new { data = new { v = "3" } })).Expect(400).Errors);
        (await c.PostAsync("secret/data/k", new { options = new { cas = 2 }, data = new { v = "3" } })).Expect(200);

        (await c.PostAsync("secret/config", new { cas_required = true })).Expect(204);
        Assert.True((await c.GetAsync("secret/config")).Expect(200).Data["cas_required"]!.GetValue<bool>());
        (await c.PostAsync("secret/data/other", new { data = new { v = "1" } })).Expect(400);
        (await c.PostAsync("secret/data/other", new { options = new { cas = 0 }, data = new { v = "1" } })).Expect(200);
    }

    [Fact]
    public async Task Max_versions_prunes_the_oldest()
    {
        await using var kms = await TestKms.StartUnsealedAsync();
        var c = kms.Client;
        (await c.PostAsync("secret/metadata/m", new { max_versions = 2 })).Expect(204);
        for (var i = 1; i <= 4; i++)
        {
            (await c.PostAsync("secret/data/m", new { data = new { i } })).Expect(200);
        }

        var meta = (await c.GetAsync("secret/metadata/m")).Expect(200).Data;
        Assert.Equal(["3", "4"], meta["versions"]!.AsObject().Select(p => p.Key));
        Assert.Equal(3, meta["oldest_version"]!.GetValue<int>());
        (await c.GetAsync("secret/data/m?version=1")).Expect(404);
        Assert.Equal(3, (await c.GetAsync("secret/data/m?version=3")).Expect(200).Data["data"]!["i"]!.GetValue<int>());

        // The default keeps ten.
        for (var i = 1; i <= 12; i++)
        {
            await c.PostAsync("secret/data/d", new { data = new { i } });
        }

        Assert.Equal(10, (await c.GetAsync("secret/metadata/d")).Data["versions"]!.AsObject().Count);
    }

    [Fact]
    public async Task Lowering_max_versions_in_the_metadata_trims_nothing_until_the_next_data_write()
    {
        await using var kms = await TestKms.StartUnsealedAsync();
        var c = kms.Client;
        for (var i = 1; i <= 4; i++)
        {
            (await c.PostAsync("secret/data/t", new { data = new { i } })).Expect(200);
        }

        // As Vault's metadata write: the setting is stored, every version stays readable.
        (await c.PostAsync("secret/metadata/t", new { max_versions = 2 })).Expect(204);
        (await c.SendAsync("PATCH", "secret/metadata/t", new { max_versions = 1 }, contentType: "application/merge-patch+json")).Expect(204);
        var meta = (await c.GetAsync("secret/metadata/t")).Expect(200).Data;
        Assert.Equal(1, meta["max_versions"]!.GetValue<long>());
        Assert.Equal(["1", "2", "3", "4"], meta["versions"]!.AsObject().Select(p => p.Key));
        Assert.Equal(1, (await c.GetAsync("secret/data/t?version=1")).Expect(200).Data["data"]!["i"]!.GetValue<int>());

        // The next data write trims to the setting, as Vault's does.
        (await c.PostAsync("secret/data/t", new { data = new { i = 5 } })).Expect(200);
        meta = (await c.GetAsync("secret/metadata/t")).Expect(200).Data;
        Assert.Equal(["5"], meta["versions"]!.AsObject().Select(p => p.Key));
        Assert.Equal(5, meta["oldest_version"]!.GetValue<int>());
        (await c.GetAsync("secret/data/t?version=4")).Expect(404);
        Assert.Equal(5, (await c.GetAsync("secret/data/t")).Expect(200).Data["data"]!["i"]!.GetValue<int>());
    }

    [Fact]
    public async Task Delete_undelete_and_destroy_change_only_the_named_versions()
    {
        await using var kms = await TestKms.StartUnsealedAsync();
        var c = kms.Client;
        for (var i = 1; i <= 3; i++)
        {
            (await c.PostAsync("secret/data/s", new { data = new { i } })).Expect(200);
        }

        (await c.DeleteAsync("secret/data/s")).Expect(204);
        var deleted = (await c.GetAsync("secret/data/s")).Expect(404);
        Assert.Null(deleted.Data["data"]);
        Assert.NotEqual("", deleted.Data["metadata"]!["deletion_time"]!.GetValue<string>());
        (await c.GetAsync("secret/data/s?version=2")).Expect(200);

        (await c.PostAsync("secret/delete/s", new { versions = new[] { 1, 2 } })).Expect(204);
        (await c.GetAsync("secret/data/s?version=2")).Expect(404);
        (await c.PostAsync("secret/undelete/s", new { versions = new[] { 2, 3 } })).Expect(204);
        Assert.Equal(3, (await c.GetAsync("secret/data/s")).Expect(200).Data["data"]!["i"]!.GetValue<int>());
        (await c.GetAsync("secret/data/s?version=1")).Expect(404);

        (await c.PutAsync("secret/destroy/s", new { versions = "2" })).Expect(204);
        var destroyed = (await c.GetAsync("secret/data/s?version=2")).Expect(404);
        Assert.True(destroyed.Data["metadata"]!["destroyed"]!.GetValue<bool>());
        (await c.PostAsync("secret/undelete/s", new { versions = new[] { 2 } })).Expect(204);
        (await c.GetAsync("secret/data/s?version=2")).Expect(404);

        Assert.Equal(["no version number provided"], (await c.PostAsync("secret/delete/s", new { })).Expect(400).Errors);
        Assert.Contains("'versions'", (await c.PostAsync("secret/destroy/s", new { versions = "a,b" })).Expect(400).Errors[0], StringComparison.Ordinal);

        (await c.DeleteAsync("secret/metadata/s")).Expect(204);
        (await c.GetAsync("secret/metadata/s")).Expect(404);
        (await c.GetAsync("secret/data/s?version=3")).Expect(404);
        Assert.DoesNotContain(kms.Storage!.Snapshot().Keys, k => k.Contains("/versions/", StringComparison.Ordinal));
    }

    [Fact]
    public async Task Delete_version_after_soft_deletes_on_time()
    {
        await using var kms = await TestKms.StartUnsealedAsync();
        var c = kms.Client;
        (await c.PostAsync("secret/metadata/t", new { delete_version_after = "1h" })).Expect(204);
        var written = (await c.PostAsync("secret/data/t", new { data = new { v = 1 } })).Expect(200).Data;
        Assert.Equal("2026-11-22T13:00:00.0000000Z", written["deletion_time"]!.GetValue<string>());
        (await c.GetAsync("secret/data/t")).Expect(200);
        kms.Time.Advance(TimeSpan.FromHours(1));
        (await c.GetAsync("secret/data/t")).Expect(404);
        Assert.Equal("1h0m0s", (await c.GetAsync("secret/metadata/t")).Data["delete_version_after"]!.GetValue<string>());
    }

    [Fact]
    public async Task Listing_a_metadata_folder_needs_list_and_a_plain_get_of_one_is_not_a_listing()
    {
        await using var kms = await TestKms.StartUnsealedAsync();
        var c = kms.Client;
        foreach (var path in new[] { "team/a", "team/b" })
        {
            (await c.PostAsync("secret/data/" + path, new { data = new { x = "1" } })).Expect(200);
        }

        (await c.PutAsync("sys/policies/acl/reader", new { policy = """path "secret/metadata/team/*" { capabilities = ["read"] }""" })).Expect(204);
        (await c.PutAsync("sys/policies/acl/lister", new { policy = """path "secret/metadata/team/*" { capabilities = ["list"] }""" })).Expect(204);
        var reader = (await c.PostAsync("auth/token/create", new { policies = new[] { "reader" } })).Expect(200).Auth["client_token"]!.GetValue<string>();
        var lister = (await c.PostAsync("auth/token/create", new { policies = new[] { "lister" } })).Expect(200).Auth["client_token"]!.GetValue<string>();

        // "read" reads a key's metadata, but a folder is not a key: no names come back, even to root.
        (await c.GetAsync("secret/metadata/team/a", reader)).Expect(200);
        foreach (var (folder, token) in new[] { ("secret/metadata/team/", reader), ("secret/metadata/team/", kms.RootToken), ("secret/metadata/", kms.RootToken) })
        {
            var read = (await c.GetAsync(folder, token)).Expect(404);
            Assert.DoesNotContain("keys", read.Raw, StringComparison.Ordinal);
        }

        // Listing is LIST or GET ?list=true, and needs "list".
        (await c.ListAsync("secret/metadata/team/", reader)).Expect(403);
        (await c.GetAsync("secret/metadata/team/?list=true", reader)).Expect(403);
        Assert.Equal(["a", "b"], Keys(await c.ListAsync("secret/metadata/team/", lister)));
        Assert.Equal(["a", "b"], Keys(await c.GetAsync("secret/metadata/team/?list=true", lister)));
        (await c.GetAsync("secret/metadata/team/", lister)).Expect(403);
    }

    [Fact]
    public async Task Listing_custom_metadata_and_merge_patch()
    {
        await using var kms = await TestKms.StartUnsealedAsync();
        var c = kms.Client;
        foreach (var path in new[] { "app/a", "app/b", "app/sub/c", "top" })
        {
            (await c.PostAsync("secret/data/" + path, new { data = new { x = "1", keep = "k" } })).Expect(200);
        }

        Assert.Equal(["a", "b", "sub/"], Keys(await c.ListAsync("secret/metadata/app/")));
        Assert.Equal(["a", "b", "sub/"], Keys(await c.GetAsync("secret/metadata/app?list=true")));
        Assert.Equal(["app/", "top"], Keys(await c.ListAsync("secret/metadata")));
        (await c.ListAsync("secret/metadata/nothing/")).Expect(404);

        (await c.PostAsync("secret/metadata/top", new { custom_metadata = new { owner = "ops" } })).Expect(204);
        Assert.Equal("ops", (await c.GetAsync("secret/data/top")).Data["metadata"]!["custom_metadata"]!["owner"]!.GetValue<string>());
        Assert.Contains("custom_metadata", (await c.PostAsync("secret/metadata/top", new { custom_metadata = new { owner = new string('x', 600) } })).Expect(400).Errors[0], StringComparison.Ordinal);

        (await c.SendAsync("PATCH", "secret/data/top", new { data = new { x = "2", keep = (string?)null, added = "a" } })).Expect(415);
        (await c.SendAsync("PATCH", "secret/data/top", new { data = new { x = "2", keep = (string?)null, added = "a" } }, contentType: "application/merge-patch+json")).Expect(200);
        var patched = (await c.GetAsync("secret/data/top")).Data;
        Assert.Equal(2, patched["metadata"]!["version"]!.GetValue<int>());
        Assert.Equal("""{"x":"2","added":"a"}""", patched["data"]!.ToJsonString());
        (await c.SendAsync("PATCH", "secret/data/never", new { data = new { x = "1" } }, contentType: "application/merge-patch+json")).Expect(404);
    }

    [Fact]
    public async Task Metadata_patch_merges_custom_metadata_into_an_existing_key_only()
    {
        await using var kms = await TestKms.StartUnsealedAsync();
        var c = kms.Client;
        const string MergePatch = "application/merge-patch+json";
        (await c.PostAsync("secret/data/app", new { data = new { x = "1" } })).Expect(200);
        (await c.PostAsync("secret/metadata/app", new { custom_metadata = new { owner = "ops", team = "a", stale = "yes" }, max_versions = 5 })).Expect(204);
        async Task<JsonObject> MetaAsync() => (await c.GetAsync("secret/metadata/app")).Expect(200).Data;

        // RFC 7386: named keys are set, a null removes one, the rest stay; settings it does not name stay too.
        var patch = new Dictionary<string, string?> { ["team"] = "b", ["stale"] = null, ["added"] = "new" };
        (await c.SendAsync("PATCH", "secret/metadata/app", new { custom_metadata = patch, cas_required = true }, contentType: MergePatch)).Expect(204);
        var meta = await MetaAsync();
        Assert.Equal("""{"added":"new","owner":"ops","team":"b"}""", meta["custom_metadata"]!.ToJsonString());
        Assert.Equal(5, meta["max_versions"]!.GetValue<long>());
        Assert.True(meta["cas_required"]!.GetValue<bool>());

        // Without custom_metadata the map is left alone.
        (await c.SendAsync("PATCH", "secret/metadata/app", new { max_versions = 3 }, contentType: MergePatch)).Expect(204);
        meta = await MetaAsync();
        Assert.Equal("""{"added":"new","owner":"ops","team":"b"}""", meta["custom_metadata"]!.ToJsonString());
        Assert.Equal(3, meta["max_versions"]!.GetValue<long>());

        // A key that does not exist is a 404, as in Vault, and nothing is created.
        (await c.SendAsync("PATCH", "secret/metadata/never", new { custom_metadata = new { owner = "ops" } }, contentType: MergePatch)).Expect(404);
        (await c.GetAsync("secret/metadata/never")).Expect(404);
        Assert.DoesNotContain("never", (await c.ListAsync("secret/metadata/")).Expect(200).Data["keys"]!.AsArray().Select(k => k!.GetValue<string>()));

        // Bad input names the problem and writes nothing.
        Assert.Contains("Content-Type", (await c.SendAsync("PATCH", "secret/metadata/app", new { custom_metadata = new { owner = "x" } })).Expect(415).Errors[0], StringComparison.Ordinal);
        Assert.Contains("'custom_metadata'", (await c.SendAsync("PATCH", "secret/metadata/app", new { custom_metadata = "owner=x" }, contentType: MergePatch)).Expect(400).Errors[0], StringComparison.Ordinal);
        Assert.Contains("'custom_metadata'", (await c.SendAsync("PATCH", "secret/metadata/app", new { custom_metadata = new { owner = 5 }, max_versions = 1 }, contentType: MergePatch)).Expect(400).Errors[0], StringComparison.Ordinal);
        Assert.Contains("custom_metadata", (await c.SendAsync("PATCH", "secret/metadata/app", new { custom_metadata = new { owner = new string('x', 600) }, max_versions = 1 }, contentType: MergePatch)).Expect(400).Errors[0], StringComparison.Ordinal);
        meta = await MetaAsync();
        Assert.Equal("""{"added":"new","owner":"ops","team":"b"}""", meta["custom_metadata"]!.ToJsonString());
        Assert.Equal(3, meta["max_versions"]!.GetValue<long>());

        // custom_metadata: null removes them all; POST still replaces the map whole.
        (await c.SendAsync("PATCH", "secret/metadata/app", new { custom_metadata = (object?)null }, contentType: MergePatch)).Expect(204);
        Assert.Null((await MetaAsync())["custom_metadata"]);
        (await c.PostAsync("secret/metadata/app", new { custom_metadata = new { only = "this" } })).Expect(204);
        (await c.PostAsync("secret/metadata/app", new { max_versions = 4 })).Expect(204);
        Assert.Equal("""{"only":"this"}""", (await MetaAsync())["custom_metadata"]!.ToJsonString());
    }

    [Fact]
    public async Task Invalid_paths_and_bodies_are_refused()
    {
        await using var kms = await TestKms.StartUnsealedAsync();
        var c = kms.Client;
        Assert.Equal(["no data provided"], (await c.PostAsync("secret/data/x", new { })).Expect(400).Errors);
        Assert.Contains("'data'", (await c.PostAsync("secret/data/x", new { data = "flat" })).Expect(400).Errors[0], StringComparison.Ordinal);
        Assert.StartsWith("unsupported path", (await c.GetAsync("secret/nonsense/x")).Expect(404).Errors[0], StringComparison.Ordinal);
        Assert.StartsWith("unsupported operation", (await c.DeleteAsync("secret/delete/x")).Expect(405).Errors[0], StringComparison.Ordinal);
        Assert.StartsWith("no handler for route", (await c.GetAsync("nomount/x")).Expect(404).Errors[0], StringComparison.Ordinal);
    }

    [Fact]
    public async Task Mounts_are_created_listed_isolated_and_removed_with_their_data()
    {
        await using var kms = await TestKms.StartUnsealedAsync();
        var c = kms.Client;
        (await c.PostAsync("sys/mounts/team/kv", new { type = "kv", options = new { version = "2" }, description = "team" })).Expect(204);
        (await c.PostAsync("sys/mounts/other", new { type = "kv-v2" })).Expect(204);
        var mounts = (await c.GetAsync("sys/mounts")).Expect(200).Body!;
        Assert.Equal("kv", mounts["team/kv/"]!["type"]!.GetValue<string>());
        Assert.Equal("2", mounts["data"]!["team/kv/"]!["options"]!["version"]!.GetValue<string>());
        Assert.NotNull(mounts["secret/"]);

        (await c.PostAsync("team/kv/data/x", new { data = new { v = "team" } })).Expect(200);
        (await c.PostAsync("secret/data/x", new { data = new { v = "secret" } })).Expect(200);
        Assert.Equal("team", (await c.GetAsync("team/kv/data/x")).Data["data"]!["v"]!.GetValue<string>());
        Assert.Equal("kv", (await c.GetAsync("team/kv/data/x")).Body!["mount_type"]!.GetValue<string>());
        Assert.Equal("secret/", (await c.GetAsync("sys/internal/ui/mounts/secret/data/x")).Expect(200).Data["path"]!.GetValue<string>());

        Assert.Contains("already in use", (await c.PostAsync("sys/mounts/team", new { type = "kv-v2" })).Expect(400).Errors[0], StringComparison.Ordinal);
        Assert.Contains("reserved", (await c.PostAsync("sys/mounts/sys/x", new { type = "kv-v2" })).Expect(400).Errors[0], StringComparison.Ordinal);
        Assert.Contains("version 1", (await c.PostAsync("sys/mounts/v1", new { type = "kv" })).Expect(400).Errors[0], StringComparison.Ordinal);
        Assert.Contains("unsupported secrets engine", (await c.PostAsync("sys/mounts/p", new { type = "ssh" })).Expect(400).Errors[0], StringComparison.Ordinal);

        var before = kms.Storage!.Count;
        (await c.DeleteAsync("sys/mounts/team/kv")).Expect(204);
        Assert.True(kms.Storage.Count < before);
        (await c.GetAsync("team/kv/data/x")).Expect(404);
        Assert.Equal("secret", (await c.GetAsync("secret/data/x")).Data["data"]!["v"]!.GetValue<string>());
    }

    private static List<string> Keys(VaultResult result) =>
        [.. result.Expect(200).Data["keys"]!.AsArray().Select(k => k!.GetValue<string>())];
}
