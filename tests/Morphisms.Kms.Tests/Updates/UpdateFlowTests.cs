using System.Text.Json.Nodes;
using Morphisms.Attestation;

namespace Morphisms.Kms.Tests.Updates;

/// <summary>M-of-N owner approval of new reference values, and retiring revisions.</summary>
public sealed class UpdateFlowTests : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("kms-updates-").FullName;

    [Fact]
    public async Task New_reference_values_wait_for_m_distinct_owners_then_become_a_revision()
    {
        await using var kms = await StartAsync();
        var c = kms.Client;
        await OwnedFunction.RegisterAsync(c);
        var alice = await OwnedFunction.OwnerTokenAsync(c, "alice");
        var bob = await OwnedFunction.OwnerTokenAsync(c, "bob");
        var mallory = await OwnedFunction.OwnerTokenAsync(c, "mallory");

        // A new measurement becomes pending update 1; revision 1 stays the only one.
        var write = (await c.PutAsync("morphisms/functions/signer", OwnedFunction.Values(OwnedFunction.NewSnp))).Expect(200);
        Assert.Equal(1, write.Data["pending_update"]!["id"]!.GetValue<int>());
        Assert.Equal(1, write.Data["current_revision"]!.GetValue<int>());
        Assert.Contains(write.Body!["warnings"]!.AsArray(), w => w!.GetValue<string>().Contains("pending update 1", StringComparison.Ordinal));
        Assert.Equal([1], (await c.GetAsync("morphisms/functions/signer")).Expect(200).Data["pending_updates"]!.AsArray().Select(n => n!.GetValue<int>()));
        Assert.Equal(["1"], Keys((await c.ListAsync("morphisms/functions/signer/updates", alice)).Expect(200)));

        // The new measurement cannot log in yet.
        using var instance = new FunctionInstance();
        (await OwnedFunction.LoginAsync(c, instance, OwnedFunction.NewSnp)).Expect(403);

        // Non-owners, tokens without an owner name, and a second approval by the same owner do not count.
        var refused = (await c.PostAsync("morphisms/functions/signer/updates/1/approve", null, mallory)).Expect(403);
        Assert.Contains("not an owner", refused.Errors[0], StringComparison.Ordinal);
        (await c.PostAsync("morphisms/functions/signer/updates/1/approve", null, await OwnedFunction.PlainTokenAsync(c))).Expect(403);
        var first = (await c.PostAsync("morphisms/functions/signer/updates/1/approve", null, alice)).Expect(200).Data;
        Assert.Equal("pending", first["status"]!.GetValue<string>());
        Assert.Equal(1, first["approvals_remaining"]!.GetValue<int>());
        Assert.Contains("already approved", (await c.PostAsync("morphisms/functions/signer/updates/1/approve", null, alice)).Expect(400).Errors[0], StringComparison.Ordinal);
        (await OwnedFunction.LoginAsync(c, instance, OwnedFunction.NewSnp)).Expect(403);

        // The second distinct owner applies it: revision 2 is active, revision 1 superseded.
        var applied = (await c.PostAsync("morphisms/functions/signer/updates/1/approve", null, bob)).Expect(200).Data;
        Assert.Equal("applied", applied["status"]!.GetValue<string>());
        Assert.Equal(2, applied["applied_revision"]!.GetValue<int>());
        var function = (await c.GetAsync("morphisms/functions/signer")).Expect(200).Data;
        Assert.Equal(2, function["current_revision"]!.GetValue<int>());
        Assert.Empty(function["pending_updates"]!.AsArray());
        Assert.Equal(["superseded", "active"], function["revisions"]!.AsArray().Select(r => r!["status"]!.GetValue<string>()));
        Assert.Equal(2, (await OwnedFunction.LoginAsync(c, instance, OwnedFunction.NewSnp)).Expect(200).Data["revision"]!.GetValue<int>());

        // Resolved updates cannot be approved or cancelled again.
        (await c.PostAsync("morphisms/functions/signer/updates/1/approve", null, mallory)).Expect(400);
        (await c.DeleteAsync("morphisms/functions/signer/updates/1")).Expect(400);

        // Every step is in the audit log.
        var audit = await File.ReadAllTextAsync(Path.Combine(_dir, "audit.log"));
        foreach (var type in new[] { "function-update-proposed", "function-update-approved", "function-update-applied" })
        {
            Assert.Contains($"\"type\":\"{type}\"", audit, StringComparison.Ordinal);
        }
    }

    [Fact]
    public async Task Approvals_by_owners_who_were_removed_stop_counting()
    {
        await using var kms = await StartAsync();
        var c = kms.Client;
        await OwnedFunction.RegisterAsync(c);
        var alice = await OwnedFunction.OwnerTokenAsync(c, "alice");
        var bob = await OwnedFunction.OwnerTokenAsync(c, "bob");
        var notMallory = await OwnedFunction.OwnerTokenAsync(c, "mallory-not");
        var dave = await OwnedFunction.OwnerTokenAsync(c, "dave");

        // Update 1 (new code) has alice's approval when update 2 replaces alice by dave.
        (await c.PutAsync("morphisms/functions/signer", OwnedFunction.Values(OwnedFunction.NewSnp))).Expect(200);
        Assert.Equal("pending", (await c.PostAsync("morphisms/functions/signer/updates/1/approve", null, alice)).Expect(200).Data["status"]!.GetValue<string>());
        Assert.Equal(2, (await c.PutAsync("morphisms/functions/signer", new { owners = new[] { "bob", "mallory-not", "dave" } })).Expect(200).Data["pending_update"]!["id"]!.GetValue<int>());
        (await c.PostAsync("morphisms/functions/signer/updates/2/approve", null, bob)).Expect(200);
        Assert.Equal("applied", (await c.PostAsync("morphisms/functions/signer/updates/2/approve", null, notMallory)).Expect(200).Data["status"]!.GetValue<string>());

        // Dave alone is one current owner of two required: alice's approval no longer counts.
        var afterDave = (await c.PostAsync("morphisms/functions/signer/updates/1/approve", null, dave)).Expect(200).Data;
        Assert.Equal("pending", afterDave["status"]!.GetValue<string>());
        Assert.Equal(1, (await c.GetAsync("morphisms/functions/signer/updates/1", dave)).Expect(200).Data["approvals_remaining"]!.GetValue<int>());
        using var instance = new FunctionInstance();
        (await OwnedFunction.LoginAsync(c, instance, OwnedFunction.NewSnp)).Expect(403);
        Assert.Equal(1, (await c.GetAsync("morphisms/functions/signer")).Expect(200).Data["current_revision"]!.GetValue<int>());

        // A second current owner applies it.
        var applied = (await c.PostAsync("morphisms/functions/signer/updates/1/approve", null, bob)).Expect(200).Data;
        Assert.Equal("applied", applied["status"]!.GetValue<string>());
        Assert.Equal(2, applied["applied_revision"]!.GetValue<int>());
        Assert.Equal(2, (await OwnedFunction.LoginAsync(c, instance, OwnedFunction.NewSnp)).Expect(200).Data["revision"]!.GetValue<int>());
    }

    [Fact]
    public async Task Owners_and_the_threshold_are_gated_too_and_updates_can_be_cancelled()
    {
        await using var kms = await StartAsync();
        var c = kms.Client;
        await OwnedFunction.RegisterAsync(c);
        var alice = await OwnedFunction.OwnerTokenAsync(c, "alice");

        // Lowering the threshold is itself an update; token_ttl is not gated and changes at once.
        var write = (await c.PutAsync("morphisms/functions/signer", new { approvals_required = 0, token_ttl = "45s" })).Expect(200).Data;
        Assert.Equal(2, write["approvals_required"]!.GetValue<int>());
        Assert.Equal(45, write["token_ttl"]!.GetValue<long>());
        Assert.Equal(0, write["pending_update"]!["new_approvals_required"]!.GetValue<int>());

        // An owner cancels it; a plain token cannot.
        (await c.DeleteAsync("morphisms/functions/signer/updates/1", await OwnedFunction.PlainTokenAsync(c))).Expect(403);
        Assert.Equal("cancelled", (await c.DeleteAsync("morphisms/functions/signer/updates/1", alice)).Expect(200).Data["status"]!.GetValue<string>());
        Assert.Equal("cancelled", (await c.GetAsync("morphisms/functions/signer/updates/1", alice)).Expect(200).Data["status"]!.GetValue<string>());

        // Only a root token can name an owner.
        var admin = (await c.PostAsync("auth/token/create", new { policies = new[] { "owners" } })).Expect(200).Auth["client_token"]!.GetValue<string>();
        (await c.PostAsync("auth/token/create", new { meta = new { morphisms_owner = "alice" } }, admin)).Expect(403);

        // Bad input: 400 naming the field, nothing written.
        Assert.Contains("approvals_required", (await c.PutAsync("morphisms/functions/other", new { owners = new[] { "a" }, approvals_required = 2, simulated = new { snp = new[] { Hex.Of(OwnedFunction.NewSnp) } } })).Expect(400).Errors[0], StringComparison.Ordinal);
        (await c.GetAsync("morphisms/functions/other")).Expect(404);
        Assert.Contains("approvals_required", (await c.PutAsync("morphisms/functions/signer", new { approvals_required = "two" })).Expect(400).Errors[0], StringComparison.Ordinal);
        Assert.Contains("approvals_required", (await c.PutAsync("morphisms/functions/signer", new { approvals_required = -1 })).Expect(400).Errors[0], StringComparison.Ordinal);
        Assert.Contains("update id", (await c.PostAsync("morphisms/functions/signer/updates/x/approve", null, alice)).Expect(400).Errors[0], StringComparison.Ordinal);
        (await c.PostAsync("morphisms/functions/signer/updates/99/approve", null, alice)).Expect(404);
        Assert.Contains("revision", (await c.PostAsync("morphisms/functions/signer/revisions/0/retire")).Expect(400).Errors[0], StringComparison.Ordinal);
        (await c.PostAsync("morphisms/functions/signer/revisions/7/retire")).Expect(404);
        (await c.PostAsync("morphisms/functions/nobody/revisions/1/retire")).Expect(404);
    }

    [Fact]
    public async Task Two_updates_each_valid_alone_cannot_leave_more_approvals_required_than_owners()
    {
        await using var kms = await StartAsync();
        var c = kms.Client;
        await OwnedFunction.RegisterAsync(c);
        var alice = await OwnedFunction.OwnerTokenAsync(c, "alice");
        var bob = await OwnedFunction.OwnerTokenAsync(c, "bob");

        // Each checked against three owners and M = 2 when proposed: update 1 drops an owner, update 2 raises M to 3.
        Assert.Equal(1, (await c.PutAsync("morphisms/functions/signer", new { owners = new[] { "alice", "bob" } })).Expect(200).Data["pending_update"]!["id"]!.GetValue<int>());
        Assert.Equal(2, (await c.PutAsync("morphisms/functions/signer", new { approvals_required = 3 })).Expect(200).Data["pending_update"]!["id"]!.GetValue<int>());
        (await c.PostAsync("morphisms/functions/signer/updates/1/approve", null, alice)).Expect(200);
        Assert.Equal("applied", (await c.PostAsync("morphisms/functions/signer/updates/1/approve", null, bob)).Expect(200).Data["status"]!.GetValue<string>());

        // Applying update 2 now would need 3 approvals of 2 owners for good: refused, naming the field, nothing written.
        (await c.PostAsync("morphisms/functions/signer/updates/2/approve", null, alice)).Expect(200);
        var refused = (await c.PostAsync("morphisms/functions/signer/updates/2/approve", null, bob)).Expect(400);
        Assert.Contains("'approvals_required'", refused.Errors[0], StringComparison.Ordinal);
        Assert.Contains("3 approvals of 2 owners", refused.Errors[0], StringComparison.Ordinal);
        var function = (await c.GetAsync("morphisms/functions/signer")).Expect(200).Data;
        Assert.Equal(2, function["approvals_required"]!.GetValue<int>());
        Assert.Equal(["alice", "bob"], function["owners"]!.AsArray().Select(o => o!.GetValue<string>()));
        var update = (await c.GetAsync("morphisms/functions/signer/updates/2", alice)).Expect(200).Data;
        Assert.Equal("pending", update["status"]!.GetValue<string>());
        Assert.Equal(["alice"], update["approvals"]!.AsArray().Select(a => a!["owner"]!.GetValue<string>()));

        // The owners still govern the function: they cancel it, and another change gathers their two approvals.
        Assert.Equal("cancelled", (await c.DeleteAsync("morphisms/functions/signer/updates/2", alice)).Expect(200).Data["status"]!.GetValue<string>());
        (await c.PutAsync("morphisms/functions/signer", OwnedFunction.Values(OwnedFunction.NewSnp))).Expect(200);
        (await c.PostAsync("morphisms/functions/signer/updates/3/approve", null, alice)).Expect(200);
        Assert.Equal("applied", (await c.PostAsync("morphisms/functions/signer/updates/3/approve", null, bob)).Expect(200).Data["status"]!.GetValue<string>());
    }

    [Fact]
    public async Task Retiring_a_revision_revokes_its_tokens_and_certificates_and_refuses_its_measurement()
    {
        await using var kms = await StartAsync();
        var c = kms.Client;
        (await c.PutAsync("sys/policies/acl/signer-read", new { policy = """path "secret/data/signer" { capabilities = ["read"] }""" })).Expect(204);
        (await c.PutAsync("morphisms/functions/signer", AttestFlow.SignerRegistration())).Expect(200);
        (await c.PostAsync("secret/data/signer", new { data = new { key = "s3cret" } })).Expect(200);

        using var instance = new FunctionInstance();
        var login = (await OwnedFunction.LoginAsync(c, instance, FunctionInstance.SnpMeasurement)).Expect(200);
        var token = login.Auth["client_token"]!.GetValue<string>();
        var serial = SerialOf(login.Data["certificate"]!.GetValue<string>());
        (await c.GetAsync("secret/data/signer", token)).Expect(200);
        Assert.Equal(0, (await c.GetAsync("pki/cert/" + serial)).Expect(200).Data["revocation_time"]!.GetValue<long>());

        // Revision 2 (new measurement), then retire revision 1.
        (await c.PutAsync("morphisms/functions/signer", OwnedFunction.Values(OwnedFunction.NewSnp))).Expect(200);
        var survivor = (await OwnedFunction.LoginAsync(c, instance, OwnedFunction.NewSnp)).Expect(200).Auth["client_token"]!.GetValue<string>();
        var retired = (await c.PostAsync("morphisms/functions/signer/revisions/1/retire")).Expect(200).Data;
        Assert.Equal(1, retired["tokens_revoked"]!.GetValue<int>());
        Assert.Equal(1, retired["certificates_revoked"]!.GetValue<int>());

        (await c.GetAsync("secret/data/signer", token)).Expect(403);
        (await c.GetAsync("secret/data/signer", survivor)).Expect(200);
        Assert.True((await c.GetAsync("pki/cert/" + serial)).Expect(200).Data["revocation_time"]!.GetValue<long>() > 0);
        Assert.Contains(serial.Replace(":", "", StringComparison.Ordinal), await CrlSerialsAsync(c));

        // The old measurement is refused, saying why.
        var refused = (await OwnedFunction.LoginAsync(c, instance, FunctionInstance.SnpMeasurement)).Expect(403);
        Assert.Contains("revision retired", refused.Errors[0], StringComparison.Ordinal);
        var function = (await c.GetAsync("morphisms/functions/signer")).Expect(200).Data;
        Assert.Equal("retired", function["revisions"]![0]!["status"]!.GetValue<string>());

        // Retiring again is harmless; it is audited.
        Assert.Equal(0, (await c.PostAsync("morphisms/functions/signer/revisions/1/retire")).Expect(200).Data["tokens_revoked"]!.GetValue<int>());
        Assert.Contains("\"type\":\"function-revision-retired\"", await File.ReadAllTextAsync(Path.Combine(_dir, "audit.log")), StringComparison.Ordinal);
    }

    [Fact]
    public async Task Retiring_a_revision_skips_certificates_past_the_crl_retention_and_revokes_the_rest()
    {
        await using var kms = await StartAsync();
        var c = kms.Client;
        (await c.PutAsync("morphisms/functions/signer", AttestFlow.SignerRegistration())).Expect(200);
        using var instance = new FunctionInstance();
        var old = (await OwnedFunction.LoginAsync(c, instance, FunctionInstance.SnpMeasurement)).Expect(200).Data["certificate"]!.GetValue<string>();
        kms.Time.Advance(TimeSpan.FromMinutes(30));
        var recent = (await OwnedFunction.LoginAsync(c, instance, FunctionInstance.SnpMeasurement)).Expect(200).Data["certificate"]!.GetValue<string>();

        // Past the old certificate's expiry plus the CRL's lifetime (72 h), the recent one expired but within it.
        using (var oldCert = System.Security.Cryptography.X509Certificates.X509Certificate2.CreateFromPem(old))
        {
            kms.Time.SetUtcNow(new DateTimeOffset(oldCert.NotAfter.ToUniversalTime()) + TimeSpan.FromHours(72) + TimeSpan.FromMinutes(1));
        }

        (await c.PutAsync("morphisms/functions/signer", OwnedFunction.Values(OwnedFunction.NewSnp))).Expect(200);
        var retired = (await c.PostAsync("morphisms/functions/signer/revisions/1/retire")).Expect(200).Data;
        Assert.Equal(1, retired["certificates_revoked"]!.GetValue<int>());
        Assert.Equal(0, (await c.GetAsync("pki/cert/" + SerialOf(old))).Expect(200).Data["revocation_time"]!.GetValue<long>());
        Assert.True((await c.GetAsync("pki/cert/" + SerialOf(recent))).Expect(200).Data["revocation_time"]!.GetValue<long>() > 0);
        var crl = await CrlSerialsAsync(c);
        Assert.Contains(SerialOf(recent).Replace(":", "", StringComparison.Ordinal), crl);
        Assert.DoesNotContain(SerialOf(old).Replace(":", "", StringComparison.Ordinal), crl);

        // Its index entry went too: retiring again revokes nothing.
        Assert.Equal(0, (await c.PostAsync("morphisms/functions/signer/revisions/1/retire")).Expect(200).Data["certificates_revoked"]!.GetValue<int>());
    }

    [Fact]
    public async Task Deleting_a_function_revokes_its_tokens()
    {
        await using var kms = await StartAsync();
        var c = kms.Client;
        await AttestFlow.RegisterSignerAsync(c);
        using var instance = new FunctionInstance();
        var token = (await OwnedFunction.LoginAsync(c, instance, FunctionInstance.SnpMeasurement)).Expect(200).Auth["client_token"]!.GetValue<string>();
        (await c.DeleteAsync("morphisms/functions/signer")).Expect(204);
        (await c.PostAsync("auth/token/lookup", new { token })).Expect(403);
    }

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    private Task<TestKms> StartAsync() =>
        TestKms.StartUnsealedAsync(o => SimulatedTees.TrustingSimulated(o) with { AuditLogPath = Path.Combine(_dir, "audit.log") });

    private static List<string> Keys(VaultResult result) => [.. result.Data["keys"]!.AsArray().Select(k => k!.GetValue<string>())];

    private static string SerialOf(string pem)
    {
        using var certificate = System.Security.Cryptography.X509Certificates.X509Certificate2.CreateFromPem(pem);
        return certificate.SerialNumber.ToLowerInvariant();
    }

    private static async Task<string> CrlSerialsAsync(VaultHttp c)
    {
        var pem = (await c.GetAsync("pki/crl")).Expect(200).Data["certificate"]!.GetValue<string>();
        var dir = Directory.CreateTempSubdirectory("kms-crl-").FullName;
        try
        {
            await File.WriteAllTextAsync(Path.Combine(dir, "crl.pem"), pem);
            var (code, output) = Pki.PkiAssert.Openssl(dir, "crl", "-in", "crl.pem", "-noout", "-text");
            Assert.Equal(0, code);
            return output.Replace(":", "", StringComparison.Ordinal).ToLowerInvariant();
        }
        finally
        {
            Directory.Delete(dir, recursive: true);
        }
    }
}
