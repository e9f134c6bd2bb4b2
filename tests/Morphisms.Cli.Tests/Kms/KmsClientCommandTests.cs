using System.Text.Json.Nodes;

namespace Morphisms.Cli.Tests.Kms;

public class KmsClientCommandTests
{
    [Fact]
    public async Task Status_reports_an_unsealed_dev_kms()
    {
        await using var kms = await CliKms.StartDevAsync();
        var text = await kms.RunAsync("status");
        Assert.Equal(ExitCodes.Ok, text.ExitCode);
        Assert.Contains("sealed", text.Stdout, StringComparison.Ordinal);
        var json = await kms.RunAsync("status", "--json");
        Assert.False(JsonNode.Parse(json.Stdout)!["sealed"]!.GetValue<bool>());
    }

    [Fact]
    public async Task Status_reports_an_uninitialised_sealed_kms_with_exit_1()
    {
        await using var kms = await CliKms.StartFreshAsync();
        var text = await kms.RunAsync("status");
        Assert.Equal(ExitCodes.Rejected, text.ExitCode);
        Assert.Contains("initialized", text.Stdout, StringComparison.Ordinal);
        Assert.DoesNotContain("503", text.Stderr, StringComparison.Ordinal);
        var json = JsonNode.Parse((await kms.RunAsync("status", "--json")).Stdout)!;
        Assert.False(json["initialized"]!.GetValue<bool>());
        Assert.True(json["sealed"]!.GetValue<bool>());
    }

    [Fact]
    public async Task Policies_are_written_read_listed_and_deleted()
    {
        await using var kms = await CliKms.StartDevAsync();
        var file = Path.Combine(kms.Directory, "app.hcl");
        await File.WriteAllTextAsync(file, """path "secret/data/app" { capabilities = ["read"] }""");

        Assert.Equal(ExitCodes.Ok, (await kms.RunAsync("policy", "write", "app", file)).ExitCode);
        Assert.Contains("secret/data/app", (await kms.RunAsync("policy", "read", "app")).Stdout, StringComparison.Ordinal);
        Assert.Contains("app", (await kms.RunAsync("policy", "list")).Stdout.Split('\n').Select(l => l.Trim()));
        Assert.Equal(ExitCodes.Ok, (await kms.RunAsync("policy", "delete", "app")).ExitCode);
        Assert.Equal(ExitCodes.Rejected, (await kms.RunAsync("policy", "read", "app")).ExitCode);

        await File.WriteAllTextAsync(file, """path "x" { capabilities = ["fly"] }""");
        var bad = await kms.RunAsync("policy", "write", "bad", file);
        Assert.Equal(ExitCodes.UsageOrInput, bad.ExitCode);
        Assert.Contains("failed to parse policy", bad.Stderr, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Tokens_are_created_looked_up_renewed_and_revoked_by_accessor()
    {
        await using var kms = await CliKms.StartDevAsync();
        var created = await kms.RunAsync("token", "create", "--policy", "default", "--ttl", "1h", "--display-name", "ci", "--json");
        Assert.Equal(ExitCodes.Ok, created.ExitCode);
        var auth = JsonNode.Parse(created.Stdout)!["auth"]!;
        var accessor = auth["accessor"]!.GetValue<string>();
        Assert.Equal(3600, auth["lease_duration"]!.GetValue<long>());

        var lookup = await kms.RunAsync("token", "lookup", "--accessor", accessor);
        Assert.Equal(ExitCodes.Ok, lookup.ExitCode);
        Assert.Contains("token-ci", lookup.Stdout, StringComparison.Ordinal);
        Assert.Equal(ExitCodes.Ok, (await kms.RunAsync("token", "renew", "--accessor", accessor, "--increment", "30m")).ExitCode);

        // Revoking needs an explicit target; the caller's own token is never revoked by default.
        Assert.Equal(ExitCodes.UsageOrInput, (await kms.RunAsync("token", "revoke")).ExitCode);
        Assert.Equal(ExitCodes.Ok, (await kms.RunAsync("token", "revoke", "--accessor", accessor)).ExitCode);
        // A revoked accessor is well-formed: the KMS refuses it as it stands now (exit 1), not the command line.
        Assert.Equal(ExitCodes.Rejected, (await kms.RunAsync("token", "lookup", "--accessor", accessor)).ExitCode);

        var self = await kms.RunAsync("token", "lookup");
        Assert.Contains("root", self.Stdout, StringComparison.Ordinal);
        Assert.DoesNotContain(kms.Server.DevCredentials!.RootToken, self.Stdout, StringComparison.Ordinal);
    }

    [Fact]
    public async Task A_token_lookup_never_prints_the_token_itself_json_included()
    {
        await using var kms = await CliKms.StartDevAsync();
        var created = JsonNode.Parse((await kms.RunAsync("token", "create", "--policy", "default", "--json")).Stdout)!["auth"]!;
        var token = created["client_token"]!.GetValue<string>();
        var accessor = created["accessor"]!.GetValue<string>();

        foreach (var args in new[] { new[] { "token", "lookup", "--json" }, ["token", "lookup", "--accessor", accessor, "--json"] })
        {
            var lookup = await kms.RunAsync(args);
            Assert.Equal(ExitCodes.Ok, lookup.ExitCode);
            var data = JsonNode.Parse(lookup.Stdout)!.AsObject();
            Assert.NotNull(data["policies"]);
            Assert.False(data.ContainsKey("id"), lookup.Stdout);
            Assert.DoesNotContain(kms.Server.DevCredentials!.RootToken, lookup.Stdout, StringComparison.Ordinal);
            Assert.DoesNotContain(token, lookup.Stdout, StringComparison.Ordinal);
        }
    }

    [Fact]
    public async Task Kv_secrets_come_from_files_and_round_trip()
    {
        await using var kms = await CliKms.StartDevAsync();
        var data = Path.Combine(kms.Directory, "db.json");
        await File.WriteAllTextAsync(data, """{"user":"app","password":"correct-horse"}""");

        Assert.Equal(ExitCodes.Ok, (await kms.RunAsync("kv", "put", "secret/app/db", "--data-file", data)).ExitCode);
        var get = await kms.RunAsync("kv", "get", "secret/app/db");
        Assert.Equal(ExitCodes.Ok, get.ExitCode);
        Assert.Contains("correct-horse", get.Stdout, StringComparison.Ordinal);
        Assert.Equal("correct-horse", (await kms.RunAsync("kv", "get", "secret/app/db", "--field", "password")).Stdout.Trim());
        Assert.Equal("db", (await kms.RunAsync("kv", "list", "secret/app")).Stdout.Trim());
        Assert.Equal("app/", (await kms.RunAsync("kv", "list", "secret")).Stdout.Trim());

        await File.WriteAllTextAsync(data, """{"password":"new"}""");
        // Check-and-set lost to the write before: a refusal (exit 1), not a usage error.
        var conflict = await kms.RunAsync("kv", "put", "secret/app/db", "--data-file", data, "--cas", "0");
        Assert.Equal(ExitCodes.Rejected, conflict.ExitCode);
        Assert.Contains("check-and-set parameter did not match the current version", conflict.Stderr, StringComparison.Ordinal);
        Assert.Equal(ExitCodes.Ok, (await kms.RunAsync("kv", "put", "secret/app/db", "--data-file", data, "--cas", "1")).ExitCode);
        Assert.Equal("correct-horse", (await kms.RunAsync("kv", "get", "secret/app/db", "--version", "1", "--field", "password")).Stdout.Trim());

        Assert.Equal(ExitCodes.Ok, (await kms.RunAsync("kv", "delete", "secret/app/db")).ExitCode);
        var gone = await kms.RunAsync("kv", "get", "secret/app/db");
        Assert.Equal(ExitCodes.Rejected, gone.ExitCode);
        Assert.Contains("deleted at", gone.Stderr, StringComparison.Ordinal);

        // What delete's help promises: undelete brings a soft-deleted version back, named by its number.
        Assert.Equal(ExitCodes.UsageOrInput, (await kms.RunAsync("kv", "undelete", "secret/app/db")).ExitCode);
        var undeleted = await kms.RunAsync("kv", "undelete", "secret/app/db", "--versions", "2");
        Assert.Equal(ExitCodes.Ok, undeleted.ExitCode);
        Assert.Equal("secret/app/db: version 2 undeleted", undeleted.Stdout.Trim());
        Assert.Equal("new", (await kms.RunAsync("kv", "get", "secret/app/db", "--field", "password")).Stdout.Trim());
        Assert.Equal(ExitCodes.Ok, (await kms.RunAsync("kv", "delete", "secret/app/db")).ExitCode);

        await File.WriteAllTextAsync(data, "{not json");
        var bad = await kms.RunAsync("kv", "put", "secret/app/db", "--data-file", data);
        Assert.Equal(ExitCodes.UsageOrInput, bad.ExitCode);
        Assert.Contains($"morph: --data-file {data}: not JSON", bad.Stderr, StringComparison.Ordinal);
        Assert.DoesNotContain("not json", bad.Stderr, StringComparison.Ordinal);
        Assert.Equal(ExitCodes.UsageOrInput, (await kms.RunAsync("kv", "get", "secret")).ExitCode);
        Assert.Equal(ExitCodes.UsageOrInput, (await kms.RunAsync("kv", "get", "sys/health")).ExitCode);
    }

    [Fact]
    public async Task Functions_are_registered_from_flags_and_files()
    {
        await using var kms = await CliKms.StartDevAsync();
        var snp = new string('a', 96);
        var sgx = new string('b', 64);
        var registered = await kms.RunAsync("function", "register", "signer", "--owner", "alice", "--policy", "signer-read", "--sim-snp", snp, "--sim-sgx", sgx, "--token-ttl", "45s");
        Assert.Equal(ExitCodes.Ok, registered.ExitCode);
        Assert.Contains("revision 1", registered.Stdout, StringComparison.Ordinal);

        var spec = Path.Combine(kms.Directory, "verifier.json");
        await File.WriteAllTextAsync(spec, $$$"""{"policies":["v"],"snp":{"measurements":["{{{snp}}}"],"minimum_tcb":{"bootloader":3,"tee":0,"snp":8,"microcode":115},"min_guest_svn":2}}""");
        Assert.Equal(ExitCodes.Ok, (await kms.RunAsync("function", "register", "verifier", "--file", spec, "--snp-host-data", new string('c', 64), "--snp-measurement", snp)).ExitCode);

        var get = JsonNode.Parse((await kms.RunAsync("function", "get", "signer", "--json")).Stdout)!;
        Assert.Equal(45, get["token_ttl"]!.GetValue<long>());
        Assert.Equal(sgx, get["simulated"]!["sgx"]![0]!.GetValue<string>());
        var verifier = JsonNode.Parse((await kms.RunAsync("function", "get", "verifier", "--json")).Stdout)!;
        Assert.Equal(new string('c', 64), verifier["snp"]!["host_data"]!.GetValue<string>());
        Assert.Equal(["signer", "verifier"], (await kms.RunAsync("function", "list")).Stdout.Split('\n', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries));
        Assert.Contains("1 active", (await kms.RunAsync("function", "get", "signer")).Stdout, StringComparison.Ordinal);

        var bad = await kms.RunAsync("function", "register", "broken", "--sim-snp", "abcd");
        Assert.Equal(ExitCodes.UsageOrInput, bad.ExitCode);
        Assert.Contains("simulated.snp[0]", bad.Stderr, StringComparison.Ordinal);

        Assert.Equal(ExitCodes.Ok, (await kms.RunAsync("function", "delete", "signer")).ExitCode);
        var missing = await kms.RunAsync("function", "get", "signer");
        Assert.Equal(ExitCodes.Rejected, missing.ExitCode);
        Assert.Contains("not registered", missing.Stderr, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Snp_minimum_tcb_is_written_from_a_flag_required_by_the_kms_and_any_is_an_explicit_warned_opt_out()
    {
        await using var kms = await CliKms.StartDevAsync();
        var measurement = new string('a', 96);
        var hostData = new string('c', 64);

        // Without a floor the KMS refuses the registration, and says how to opt out.
        var loose = await kms.RunAsync("function", "register", "loose", "--snp-measurement", measurement, "--snp-host-data", hostData);
        Assert.Equal(ExitCodes.UsageOrInput, loose.ExitCode);
        Assert.Contains("'snp.minimum_tcb' is missing", loose.Stderr, StringComparison.Ordinal);
        Assert.Contains("--snp-minimum-tcb any", loose.Stderr, StringComparison.Ordinal);
        Assert.Equal(ExitCodes.Rejected, (await kms.RunAsync("function", "get", "loose")).ExitCode);

        // "any" is the opt-out: written, stored, and warned about on stderr; it replaces a floor from --file.
        var spec = Path.Combine(kms.Directory, "any.json");
        await File.WriteAllTextAsync(spec, """{"snp":{"minimum_tcb":{"bootloader":3,"tee":0,"snp":8,"microcode":115}}}""");
        var any = await kms.RunAsync("function", "register", "any", "--file", spec, "--snp-measurement", measurement, "--snp-host-data", hostData, "--snp-minimum-tcb", "any");
        Assert.Equal(ExitCodes.Ok, any.ExitCode);
        Assert.Contains("snp.minimum_tcb is not set", any.Stderr, StringComparison.Ordinal);
        var anySnp = JsonNode.Parse((await kms.RunAsync("function", "get", "any", "--json")).Stdout)!["snp"]!;
        Assert.True(anySnp["allow_any_tcb"]!.GetValue<bool>());
        Assert.Null(anySnp["minimum_tcb"]);

        var pinned = await kms.RunAsync("function", "register", "pinned", "--snp-measurement", measurement, "--snp-host-data", hostData,
            "--snp-minimum-tcb", "bootloader=3,tee=0,snp=8,microcode=115");
        Assert.Equal(ExitCodes.Ok, pinned.ExitCode);
        Assert.DoesNotContain("warning", pinned.Stderr, StringComparison.OrdinalIgnoreCase);
        var tcb = JsonNode.Parse((await kms.RunAsync("function", "get", "pinned", "--json")).Stdout)!["snp"]!["minimum_tcb"]!;
        Assert.Equal([3, 0, 8, 115], new[] { "bootloader", "tee", "snp", "microcode" }.Select(f => tcb[f]!.GetValue<int>()));

        foreach (var bad in new[] { "bootloader=3,tee=0,snp=8", "bootloader=3,tee=0,snp=8,microcode=256", "bootloader=3,tee=0,snp=8,microcode=1,ucode=2", "0x0300000000000873", "bootloader=3,bootloader=4,tee=0,snp=8,microcode=1" })
        {
            var refused = await kms.RunAsync("function", "register", "bad", "--snp-measurement", measurement, "--snp-host-data", hostData, "--snp-minimum-tcb", bad);
            Assert.Equal(ExitCodes.UsageOrInput, refused.ExitCode);
            Assert.Contains("--snp-minimum-tcb", refused.Stderr, StringComparison.Ordinal);
        }

        var alone = await kms.RunAsync("function", "register", "bad", "--sim-snp", measurement, "--snp-minimum-tcb", "bootloader=3,tee=0,snp=8,microcode=115");
        Assert.Equal(ExitCodes.UsageOrInput, alone.ExitCode);
        Assert.Contains("--snp-minimum-tcb needs --snp-measurement", alone.Stderr, StringComparison.Ordinal);
        Assert.Equal(ExitCodes.Rejected, (await kms.RunAsync("function", "get", "bad")).ExitCode);
    }

    [Fact]
    public async Task Tdx_registers_and_the_workload_opt_in_are_written_from_flags()
    {
        await using var kms = await CliKms.StartDevAsync();
        var mrtd = new string('a', 96);
        var rtmr1 = new string('1', 96);
        var rtmr2 = new string('2', 96);
        var configId = new string('e', 96);

        // MRTD alone is only the TD firmware: the KMS refuses it, naming the register that is missing.
        var bare = await kms.RunAsync("function", "register", "bare", "--tdx-mrtd", mrtd);
        Assert.Equal(ExitCodes.UsageOrInput, bare.ExitCode);
        Assert.Contains("'tdx.rtmr1' is missing", bare.Stderr, StringComparison.Ordinal);

        var td = await kms.RunAsync("function", "register", "td", "--tdx-mrtd", mrtd, "--tdx-rtmr1", rtmr1, "--tdx-rtmr2", rtmr2, "--tdx-mrconfigid", configId);
        Assert.Equal(ExitCodes.Ok, td.ExitCode);
        var tdx = JsonNode.Parse((await kms.RunAsync("function", "get", "td", "--json")).Stdout)!["tdx"]!;
        Assert.Equal([rtmr1, rtmr2, configId], new[] { "rtmr1", "rtmr2", "mrconfigid" }.Select(f => tdx[f]!.GetValue<string>()));
        Assert.False(tdx["launch_measurement_binds_workload"]!.GetValue<bool>());

        Assert.Contains("'snp.host_data' is missing", (await kms.RunAsync("function", "register", "unbound", "--snp-measurement", mrtd)).Stderr, StringComparison.Ordinal);
        Assert.Equal(ExitCodes.Ok, (await kms.RunAsync("function", "register", "image", "--snp-measurement", mrtd, "--launch-measurement-binds-workload", "--snp-minimum-tcb", "bootloader=3,tee=0,snp=8,microcode=115")).ExitCode);
        var image = JsonNode.Parse((await kms.RunAsync("function", "get", "image", "--json")).Stdout)!;
        Assert.True(image["snp"]!["launch_measurement_binds_workload"]!.GetValue<bool>());

        var stray = await kms.RunAsync("function", "register", "stray", "--sim-snp", mrtd, "--tdx-mrconfigid", configId);
        Assert.Equal(ExitCodes.UsageOrInput, stray.ExitCode);
        Assert.Contains("--tdx-mrconfigid needs --tdx-mrtd", stray.Stderr, StringComparison.Ordinal);
        var nowhere = await kms.RunAsync("function", "register", "stray", "--sim-snp", mrtd, "--launch-measurement-binds-workload");
        Assert.Equal(ExitCodes.UsageOrInput, nowhere.ExitCode);
        Assert.Contains("needs an snp or tdx section", nowhere.Stderr, StringComparison.Ordinal);
        Assert.Equal(ExitCodes.Rejected, (await kms.RunAsync("function", "get", "stray")).ExitCode);
    }

    [Fact]
    public async Task Deleting_an_owned_function_says_its_name_stays_with_the_owners_and_a_new_registration_waits_for_them()
    {
        await using var kms = await CliKms.StartDevAsync();
        var spec = Path.Combine(kms.Directory, "owned.json");
        await File.WriteAllTextAsync(spec, """{"owners":["alice","bob"],"approvals_required":2}""");
        Assert.Equal(ExitCodes.Ok, (await kms.RunAsync("function", "register", "owned", "--file", spec, "--sim-snp", new string('a', 96))).ExitCode);

        var deleted = await kms.RunAsync("function", "delete", "owned");
        Assert.Equal(ExitCodes.Ok, deleted.ExitCode);
        Assert.Contains("its name stays with its owners (alice, bob)", deleted.Stdout, StringComparison.Ordinal);
        Assert.Contains("needs 2 of them", deleted.Stdout, StringComparison.Ordinal);
        Assert.Contains("was deleted", (await kms.RunAsync("function", "get", "owned")).Stderr, StringComparison.Ordinal);

        var registered = await kms.RunAsync("function", "register", "owned", "--sim-snp", new string('b', 96));
        Assert.Equal(ExitCodes.Ok, registered.ExitCode);
        Assert.Contains("registering the deleted function again is pending update 1, awaiting 2 owner approval(s)", registered.Stdout, StringComparison.Ordinal);

        // Nothing registered under the name: a second delete leaves the tombstone and says nothing of it.
        Assert.False(JsonNode.Parse((await kms.RunAsync("function", "delete", "owned", "--json")).Stdout)!["tombstone"]!.GetValue<bool>());
    }

    [Fact]
    public async Task Connection_problems_are_named()
    {
        await using var kms = await CliKms.StartDevAsync();
        var badAddress = await MorphRunner.RunAsync("kms", "status", "--address", "ftp://example");
        Assert.Equal(ExitCodes.UsageOrInput, badAddress.ExitCode);

        var unreachable = await MorphRunner.RunAsync("kms", "status", "--address", "http://127.0.0.1:1");
        Assert.Equal(ExitCodes.Rejected, unreachable.ExitCode);
        Assert.Contains("cannot reach the KMS", unreachable.Stderr, StringComparison.Ordinal);

        var wrongToken = Path.Combine(kms.Directory, "wrong");
        await File.WriteAllTextAsync(wrongToken, "hvs.not-a-token");
        var denied = await MorphRunner.RunAsync("kms", "policy", "list", "--address", kms.Address, "--token-file", wrongToken, "--json");
        Assert.Equal(ExitCodes.Rejected, denied.ExitCode);
        Assert.Contains("permission denied", denied.Stdout, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Token_values_are_not_accepted_as_arguments()
    {
        var outcome = await MorphRunner.RunAsync("kms", "token", "lookup", "--token", "hvs.secret");
        Assert.Equal(ExitCodes.UsageOrInput, outcome.ExitCode);
    }
}
