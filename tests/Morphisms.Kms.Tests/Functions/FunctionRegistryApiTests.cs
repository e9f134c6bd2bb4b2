using System.Text.Json.Nodes;

namespace Morphisms.Kms.Tests.Functions;

public class FunctionRegistryApiTests
{
    private static readonly string Snp48 = new('a', 96);
    private static readonly string Sgx32 = new('b', 64);

    [Fact]
    public async Task Register_read_list_update_and_delete_a_function()
    {
        await using var kms = await TestKms.StartUnsealedAsync();
        var c = kms.Client;
        (await c.ListAsync("morphisms/functions")).Expect(404);

        var written = (await c.PutAsync("morphisms/functions/signer", new
        {
            owners = new[] { "alice", "bob" },
            policies = new[] { "Signer-Read", "signer-read" },
            secret_path = "/secret/data/signer/",
            snp = new
            {
                measurements = new[] { Snp48.ToUpperInvariant() },
                host_data = new string('c', 64),
                minimum_tcb = new { bootloader = 3, tee = 0, snp = 20, microcode = 200 },
                max_vmpl = 0,
                min_guest_svn = 1,
            },
            sgx = new { mrsigner = Sgx32, isv_prod_id = 7, min_isv_svn = 2, accepted_tcb_statuses = new[] { "uptodate", "SWHardeningNeeded" } },
            tdx = new { mrtds = new[] { Snp48 }, rtmr0 = new string('d', 96), rtmr1 = new string('1', 96), rtmr2 = new string('2', 96), mrconfigid = new string('e', 96) },
            simulated = new { snp = new[] { Snp48 } },
        })).Expect(200).Data;
        Assert.Equal(1, written["current_revision"]!.GetValue<int>());

        var read = (await c.GetAsync("morphisms/functions/signer")).Expect(200).Data;
        Assert.Equal(["alice", "bob"], Strings(read["owners"]));
        Assert.Equal(["signer-read"], Strings(read["policies"]));
        Assert.Equal(30, read["token_ttl"]!.GetValue<long>());
        Assert.Equal(3600, read["token_max_ttl"]!.GetValue<long>());
        Assert.Equal("secret/data/signer", read["secret_path"]!.GetValue<string>());
        Assert.Equal([Snp48], Strings(read["snp"]!["measurements"]));
        Assert.Equal(20, read["snp"]!["minimum_tcb"]!["snp"]!.GetValue<int>());
        Assert.Equal(Sgx32, read["sgx"]!["mrsigner"]!.GetValue<string>());
        Assert.Equal(["UpToDate", "SWHardeningNeeded"], Strings(read["sgx"]!["accepted_tcb_statuses"]));
        Assert.Equal(["UpToDate"], Strings(read["tdx"]!["accepted_tcb_statuses"]));
        Assert.Null(read["tdx"]!["rtmr3"]);
        Assert.Equal("active", read["revisions"]![0]!["status"]!.GetValue<string>());
        Assert.Equal(["signer"], Strings((await c.ListAsync("morphisms/functions")).Expect(200).Data["keys"]));

        // Same reference values again: no new revision. Other fields change in place.
        (await c.PutAsync("morphisms/functions/signer", new { token_ttl = "1m", simulated = new { snp = new[] { Snp48 } }, snp = read["snp"]!.DeepClone(), sgx = read["sgx"]!.DeepClone(), tdx = read["tdx"]!.DeepClone() })).Expect(200);
        read = (await c.GetAsync("morphisms/functions/signer")).Expect(200).Data;
        Assert.Equal(1, read["current_revision"]!.GetValue<int>());
        Assert.Equal(60, read["token_ttl"]!.GetValue<long>());
        Assert.Equal(["alice", "bob"], Strings(read["owners"]));

        // New reference values: a new active revision, the old one superseded and kept.
        (await c.PutAsync("morphisms/functions/signer", new { simulated = new { sgx = new[] { Sgx32 } } })).Expect(200);
        read = (await c.GetAsync("morphisms/functions/signer")).Expect(200).Data;
        Assert.Equal(2, read["current_revision"]!.GetValue<int>());
        Assert.Null(read["snp"]);
        Assert.Equal(["superseded", "active"], read["revisions"]!.AsArray().Select(r => r!["status"]!.GetValue<string>()));
        Assert.Equal([Snp48], Strings(read["revisions"]![0]!["snp"]!["measurements"]));

        (await c.DeleteAsync("morphisms/functions/signer")).Expect(204);
        (await c.GetAsync("morphisms/functions/signer")).Expect(404);
    }

    [Theory]
    [InlineData("""{"simulated":{"snp":["aa"]}}""", "'simulated.snp[0]'")]
    [InlineData("""{"snp":{"measurements":[]}}""", "'snp.measurements'")]
    [InlineData("""{"snp":{"measurements":["SNP48"],"host_data":"cc"}}""", "'snp.host_data'")]
    [InlineData("""{"snp":{"measurements":["SNP48"],"debug":true}}""", "'snp.debug'")]
    [InlineData("""{"snp":{"measurements":["SNP48","SNP48"]}}""", "'snp.measurements[1]'")]
    [InlineData("""{"snp":{"measurements":["SNP48"],"max_vmpl":4}}""", "'snp.max_vmpl'")]
    [InlineData("""{"snp":{"measurements":["SNP48"],"minimum_tcb":{"snp":256}}}""", "'snp.minimum_tcb.snp'")]
    [InlineData("""{"sev":{"measurements":["SNP48"]}}""", "'sev'")]
    [InlineData("""{"sgx":{"mrsigner":"SGX32"}}""", "'sgx.isv_prod_id'")]
    [InlineData("""{"sgx":{"isv_prod_id":1}}""", "'sgx.mrenclaves'")]
    [InlineData("""{"sgx":{"mrenclaves":["SGX32"],"accepted_tcb_statuses":["Fine"]}}""", "'sgx.accepted_tcb_statuses[0]'")]
    [InlineData("""{"tdx":{"mrtds":["SGX32"]}}""", "'tdx.mrtds[0]'")]
    [InlineData("""{"simulated":{}}""", "'simulated'")]
    [InlineData("""{"simulated":"SNP48"}""", "'simulated'")]
    [InlineData("""{"owners":["alice"]}""", "'snp'")]
    [InlineData("""{"simulated":{"snp":["SNP48"]},"token_ttl":"2h"}""", "'token_ttl'")]
    [InlineData("""{"simulated":{"snp":["SNP48"]},"token_ttl":"0s"}""", "'token_ttl'")]
    [InlineData("""{"simulated":{"snp":["SNP48"]},"token_max_ttl":"10m","token_ttl":"20m"}""", "'token_ttl'")]
    [InlineData("""{"simulated":{"snp":["SNP48"]},"token_max_ttl":"9999h"}""", "'token_max_ttl'")]
    [InlineData("""{"simulated":{"snp":["SNP48"]},"policies":["root"]}""", "'policies[0]'")]
    [InlineData("""{"simulated":{"snp":["SNP48"]},"policies":["a","default"]}""", "'policies[1]'")]
    [InlineData("""{"simulated":{"snp":["SNP48"]},"secret_path":"secret/../sys"}""", "'secret_path'")]
    [InlineData("""{"simulated":{"snp":["SNP48"]},"secret_path":"/bundle/"}""", "'secret_path'")]
    [InlineData("""{"simulated":{"snp":["SNP48"]},"revisions":[]}""", "'revisions'")]
    [InlineData("""{"simulated":{"snp":["SNP48"]},"colour":"blue"}""", "'colour'")]
    public async Task Bad_registrations_are_400s_naming_the_field_and_write_nothing(string body, string named)
    {
        await using var kms = await TestKms.StartUnsealedAsync();
        var json = body.Replace("SNP48", Snp48, StringComparison.Ordinal).Replace("SGX32", Sgx32, StringComparison.Ordinal);
        var result = (await kms.Client.SendAsync("PUT", "morphisms/functions/signer", json)).Expect(400);
        Assert.Contains(named, result.Errors.Single(), StringComparison.Ordinal);
        (await kms.Client.GetAsync("morphisms/functions/signer")).Expect(404);
    }

    [Theory]
    [InlineData("Signer")]
    [InlineData("-signer")]
    [InlineData("sign_er")]
    [InlineData("a234567890123456789012345678901234567890123456789012345678901234")]
    public async Task Function_names_are_dns_labels(string name)
    {
        await using var kms = await TestKms.StartUnsealedAsync();
        var result = (await kms.Client.PutAsync("morphisms/functions/" + name, AttestFlow.SignerRegistration())).Expect(400);
        Assert.Contains("function name", result.Errors.Single(), StringComparison.Ordinal);
    }

    [Fact]
    public async Task The_registry_needs_root_or_sudo()
    {
        await using var kms = await TestKms.StartUnsealedAsync();
        var c = kms.Client;
        (await c.PutAsync("sys/policies/acl/plain", new { policy = """path "morphisms/functions/*" { capabilities = ["create", "read", "update", "delete", "list"] }""" })).Expect(204);
        (await c.PutAsync("sys/policies/acl/admin", new { policy = """path "morphisms/functions/*" { capabilities = ["create", "read", "update", "delete", "list", "sudo"] }""" })).Expect(204);
        var plain = (await c.PostAsync("auth/token/create", new { policies = new[] { "plain" } })).Expect(200).Auth["client_token"]!.GetValue<string>();
        var admin = (await c.PostAsync("auth/token/create", new { policies = new[] { "admin" } })).Expect(200).Auth["client_token"]!.GetValue<string>();

        (await c.PutAsync("morphisms/functions/signer", AttestFlow.SignerRegistration(), plain)).Expect(403);
        (await c.PutAsync("morphisms/functions/signer", AttestFlow.SignerRegistration(), admin)).Expect(200);
        (await c.GetAsync("morphisms/functions/signer", plain)).Expect(403);
        (await c.GetAsync("morphisms/functions/signer", admin)).Expect(200);
        (await c.GetAsync("morphisms/functions/signer", "")).Expect(403);
    }

    [Fact]
    public async Task Kv_engines_cannot_be_mounted_over_the_registry()
    {
        await using var kms = await TestKms.StartUnsealedAsync();
        var result = (await kms.Client.PostAsync("sys/mounts/morphisms", new { type = "kv-v2" })).Expect(400);
        Assert.Contains("reserved", result.Errors.Single(), StringComparison.Ordinal);
    }

    private static List<string> Strings(JsonNode? node) => [.. node!.AsArray().Select(n => n!.GetValue<string>())];
}
