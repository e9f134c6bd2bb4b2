using System.Diagnostics;
using System.Security.Cryptography;
using System.Text.Json.Nodes;

namespace Morphisms.Kms.Tests.EndToEnd;

/// <summary>
/// The real <c>node-vault</c> client (npm, pinned in node/package-lock.json) against the KMS on loopback:
/// init, unseal, policies, tokens, KV v2 and health, each response asserted here.
/// </summary>
public class NodeVaultCompatibilityTests
{
    [NodeFact]
    public async Task Node_vault_drives_the_kms_end_to_end()
    {
        var dir = await InstallAsync();
        await using var kms = await TestKms.StartAsync();
        var output = await RunAsync("node", dir, TimeSpan.FromSeconds(90), "vault-flow.js", kms.Server.BaseAddress!.ToString().TrimEnd('/'));
        var r = JsonNode.Parse(output)!.AsObject();
        Assert.Null(r["fatal"]);

        JsonNode Ok(string step)
        {
            var result = r[step] ?? throw new Xunit.Sdk.XunitException($"step {step} did not run: {output}");
            Assert.True(result["ok"]!.GetValue<bool>(), $"{step} failed: {result.ToJsonString()}");
            return result["value"]!;
        }

        JsonNode Failed(string step, int status)
        {
            var result = r[step]!;
            Assert.False(result["ok"]!.GetValue<bool>(), $"{step} should have failed: {result.ToJsonString()}");
            Assert.Equal(status, result["status"]!.GetValue<int>());
            return result;
        }

        Assert.False(Ok("health_uninitialised")["initialized"]!.GetValue<bool>());
        Assert.False(Ok("initialized_before")["initialized"]!.GetValue<bool>());
        Assert.Equal(3, Ok("init")["keys"]!.AsArray().Count);
        Assert.True(Ok("status_sealed")["sealed"]!.GetValue<bool>());
        Assert.Equal("Vault is sealed", Failed("read_while_sealed", 503)["message"]!.GetValue<string>());
        Assert.Equal(1, Ok("unseal_1")["progress"]!.GetValue<int>());
        Assert.False(Ok("unseal_2")["sealed"]!.GetValue<bool>());
        Assert.False(Ok("health_unsealed")["sealed"]!.GetValue<bool>());
        Assert.False(Ok("leader")["ha_enabled"]!.GetValue<bool>());

        Ok("policy_write");
        Assert.Contains("secret/data/app/*", Ok("policy_read")["rules"]!.GetValue<string>(), StringComparison.Ordinal);
        Assert.Contains("app", Ok("policies")["policies"]!.AsArray().Select(p => p!.GetValue<string>()));
        Assert.Contains("invalid capability \"fly\"", Failed("policy_bad", 400)["message"]!.GetValue<string>(), StringComparison.Ordinal);
        Ok("policy_write_base64");
        Assert.Equal(Ok("policy_read")["rules"]!.GetValue<string>(), Ok("policy_read_base64")["rules"]!.GetValue<string>());

        var auth = Ok("token_create")["auth"]!;
        Assert.Equal(["app", "default"], auth["policies"]!.AsArray().Select(p => p!.GetValue<string>()));
        Assert.Equal(3600, auth["lease_duration"]!.GetValue<int>());
        var self = Ok("token_lookup_self")["data"]!;
        Assert.Equal("token-app", self["display_name"]!.GetValue<string>());
        Assert.Equal("blue", self["meta"]!["team"]!.GetValue<string>());
        Assert.Equal(403, Failed("app_create_token", 403)["status"]!.GetValue<int>());
        Assert.Equal(auth["accessor"]!.GetValue<string>(), Ok("token_lookup")["data"]!["accessor"]!.GetValue<string>());
        Assert.Equal("", Ok("token_lookup_accessor")["data"]!["id"]!.GetValue<string>());
        Assert.Equal(7200, Ok("token_renew")["auth"]!["lease_duration"]!.GetValue<int>());

        Assert.Equal(1, Ok("kv_write_1")["data"]!["version"]!.GetValue<int>());
        Assert.Equal(2, Ok("kv_write_2")["data"]!["version"]!.GetValue<int>());
        Assert.Contains("check-and-set", Failed("kv_write_bad_cas", 400)["message"]!.GetValue<string>(), StringComparison.Ordinal);
        Assert.Equal("p2", Ok("kv_read")["data"]!["data"]!["password"]!.GetValue<string>());
        var v1 = Ok("kv_read_v1")["data"]!;
        Assert.Equal("p1", v1["data"]!["password"]!.GetValue<string>());
        Assert.Equal(5432, v1["data"]!["port"]!.GetValue<int>());
        Assert.Equal(["db"], Ok("kv_list")["data"]!["keys"]!.AsArray().Select(k => k!.GetValue<string>()));
        Assert.Equal(2, Ok("kv_metadata")["data"]!["current_version"]!.GetValue<int>());
        Assert.Equal("permission denied", Failed("kv_forbidden", 403)["message"]!.GetValue<string>());
        Ok("kv_delete");
        Failed("kv_read_deleted", 404);
        Ok("kv_undelete");
        Assert.Equal("p2", Ok("kv_read_undeleted")["data"]!["data"]!["password"]!.GetValue<string>());

        Ok("kv_destroy");
        Assert.True(Ok("kv_metadata_after_destroy")["data"]!["versions"]!["1"]!["destroyed"]!.GetValue<bool>());
        Ok("mount");
        Assert.Equal("kv", Ok("mounts")["team-kv/"]!["type"]!.GetValue<string>());
        Ok("team_kv_write");
        Assert.Equal("v", Ok("team_kv_read")["data"]!["data"]!["k"]!.GetValue<string>());

        Ok("token_revoke");
        Assert.Equal("bad token", Failed("token_lookup_revoked", 403)["message"]!.GetValue<string>());
        Assert.Equal("permission denied", Failed("kv_read_revoked", 403)["message"]!.GetValue<string>());

        Ok("seal");
        Assert.True(Ok("status_after_seal")["sealed"]!.GetValue<bool>());
        Assert.True(Ok("health_sealed")["sealed"]!.GetValue<bool>());
    }

    /// <summary>Installs node-vault once per lock-file content into a cache under the temp directory.</summary>
    private static async Task<string> InstallAsync()
    {
        var source = Path.Combine(AppContext.BaseDirectory, "node");
        var lockHash = Convert.ToHexStringLower(SHA256.HashData(await File.ReadAllBytesAsync(Path.Combine(source, "package-lock.json"))))[..16];
        var dir = Path.Combine(Path.GetTempPath(), "morphisms-kms-node-vault-" + lockHash);
        Directory.CreateDirectory(dir);
        foreach (var file in new[] { "package.json", "package-lock.json", "vault-flow.js" })
        {
            File.Copy(Path.Combine(source, file), Path.Combine(dir, file), overwrite: true);
        }

        if (!File.Exists(Path.Combine(dir, "node_modules", "node-vault", "package.json")))
        {
            var npm = NodeFactAttribute.Find("npm") ?? throw new Xunit.Sdk.XunitException("node is installed but npm is not on PATH; install npm to run the node-vault test");
            await RunAsync(npm, dir, TimeSpan.FromMinutes(3), "ci", "--no-audit", "--no-fund", "--loglevel=error");
        }

        return dir;
    }

    private static async Task<string> RunAsync(string file, string dir, TimeSpan timeout, params string[] args)
    {
        var start = new ProcessStartInfo(file) { WorkingDirectory = dir, RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        foreach (var a in args)
        {
            start.ArgumentList.Add(a);
        }

        using var process = System.Diagnostics.Process.Start(start)!;
        var stdout = process.StandardOutput.ReadToEndAsync();
        var stderr = process.StandardError.ReadToEndAsync();
        using var cts = new CancellationTokenSource(timeout);
        try
        {
            await process.WaitForExitAsync(cts.Token);
        }
        catch (OperationCanceledException)
        {
            process.Kill(entireProcessTree: true);
            throw new Xunit.Sdk.XunitException($"{Path.GetFileName(file)} {string.Join(' ', args)} timed out after {timeout}");
        }

        if (process.ExitCode != 0)
        {
            throw new Xunit.Sdk.XunitException($"{Path.GetFileName(file)} {string.Join(' ', args)} exited {process.ExitCode}: {await stderr}");
        }

        return await stdout;
    }
}
