using Morphisms.Attestation.Trust;
using Morphisms.Kms.Attest;

namespace Morphisms.Kms.Tests.Attest;

/// <summary>SNP logins against the operator's AMD CRLs (<c>--snp-crl</c>), signed here by the simulated ARK.</summary>
public class SnpCrlLoginTests
{
    private static readonly TrustAnchors Anchors = SimulatedTees.Trusted.TrustedWith(TrustAnchors.Vendor);

    [Fact]
    public async Task A_revoked_vcek_is_refused_by_the_crl_check()
    {
        var crl = SimulatedTees.Trusted.CreateSnpCrl(SimulatedTees.Epoch.AddDays(-1), SimulatedTees.Epoch.AddDays(7), revokeVcek: true);
        var refused = (await LoginAsync(crl)).Expect(403);

        Assert.Contains("snp.crl", refused.Errors.Single(), StringComparison.Ordinal);
        Assert.Contains("is revoked", refused.Errors.Single(), StringComparison.Ordinal);
    }

    [Fact]
    public async Task A_current_crl_that_lists_neither_the_ask_nor_the_vcek_lets_the_login_in()
    {
        var crl = SimulatedTees.Trusted.CreateSnpCrl(SimulatedTees.Epoch.AddDays(-1), SimulatedTees.Epoch.AddDays(7));
        var login = (await LoginAsync(Lists(crl), endorsements: SimulatedTees.Trusted.Vcek.RawData)).Expect(200);

        Assert.DoesNotContain(Warnings(login), w => w.Contains("revocation", StringComparison.Ordinal));
    }

    /// <summary>The start-up warning alone is easy to miss: each login that was not checked for revocation says so.</summary>
    [Fact]
    public async Task A_login_no_crl_covers_says_it_was_not_checked_for_revocation()
    {
        var noCrls = (await LoginAsync(crls: null, endorsements: SimulatedTees.Trusted.Vcek.RawData)).Expect(200);
        var uncovered = (await LoginAsync(Lists(), endorsements: SimulatedTees.Trusted.Vcek.RawData)).Expect(200);

        Assert.Contains(Warnings(noCrls), w => w.StartsWith("the KMS has no AMD CRLs: this login's VCEK/VLEK", StringComparison.Ordinal));
        var product = Anchors.Amd.Single(r => r.Simulated).Product;
        Assert.Contains(Warnings(uncovered), w => w.StartsWith($"the KMS has no AMD CRL for {product}: ", StringComparison.Ordinal)
            && w.Contains("not checked for revocation", StringComparison.Ordinal));
    }

    [Fact]
    public async Task The_simulated_vcek_the_kms_supplies_itself_has_no_revocation_warning()
    {
        var login = (await LoginAsync(crls: null)).Expect(200);

        Assert.DoesNotContain(Warnings(login), w => w.Contains("revocation", StringComparison.Ordinal));
    }

    [Fact]
    public async Task A_crl_past_its_next_update_refuses_the_login()
    {
        // A stale CRL could hide a revocation made since: fail closed rather than skip it.
        var crl = SimulatedTees.Trusted.CreateSnpCrl(SimulatedTees.Epoch.AddDays(-8), SimulatedTees.Epoch.AddDays(-1));
        var refused = (await LoginAsync(crl)).Expect(403);

        Assert.Contains("snp.crl", refused.Errors.Single(), StringComparison.Ordinal);
        Assert.Contains("not current", refused.Errors.Single(), StringComparison.Ordinal);
    }

    [Fact]
    public void A_crl_no_trusted_amd_root_signed_is_refused_at_load_naming_the_file()
    {
        var crl = SimulatedTees.Untrusted.CreateSnpCrl(SimulatedTees.Epoch.AddDays(-1), SimulatedTees.Epoch.AddDays(7));

        var e = Assert.Throws<ArgumentException>(() => SnpRevocationLists.Load([("other.crl", crl)], Anchors));
        Assert.StartsWith("other.crl: ", e.Message, StringComparison.Ordinal);
        Assert.Contains("not signed by any trusted AMD root", e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Bytes_that_are_no_crl_are_refused_at_load_naming_the_file()
    {
        var e = Assert.Throws<ArgumentException>(() => SnpRevocationLists.Load([("junk.crl", "not a crl"u8.ToArray())], Anchors));
        Assert.StartsWith("junk.crl: not an X.509 CRL", e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task The_server_names_at_start_the_product_lines_no_crl_covers()
    {
        // One CRL must not look like coverage: the trusted AMD roots it does not belong to are not checked at all.
        var crls = SnpRevocationLists.Load([("simulated.crl", SimulatedTees.Trusted.CreateSnpCrl(SimulatedTees.Epoch.AddDays(-1), SimulatedTees.Epoch.AddDays(7)))], Anchors);
        using var warnings = new StringWriter();
        await using (var server = new KmsServer(new KmsServerOptions
        {
            Listen = "127.0.0.1:0",
            Storage = "inmem",
            Tls = KmsTlsOptions.SelfSigned,
            WarningWriter = warnings,
            Attestation = new KmsAttestationOptions { VendorAnchors = Anchors, SnpCrls = crls },
        }))
        {
            await server.StartAsync();
        }

        var uncovered = Anchors.Amd.Select(r => r.Product).Except(crls.Products).ToList();
        Assert.NotEmpty(uncovered);
        var line = Assert.Single(warnings.ToString().Split('\n'), l => l.Contains("no AMD CRL was given for", StringComparison.Ordinal));
        Assert.All(uncovered, product => Assert.Contains(product, line, StringComparison.Ordinal));
        Assert.All(crls.Products, product => Assert.DoesNotContain(product + ",", line + ",", StringComparison.Ordinal));
    }

    private static Task<VaultResult> LoginAsync(byte[] crl) => LoginAsync(Lists(crl));

    private static SnpRevocationLists Lists(params byte[][] crls) =>
        SnpRevocationLists.Load(crls.Select(c => ("simulated.crl", c)), Anchors);

    private static List<string> Warnings(VaultResult login) =>
        [.. login.Data["attestation"]!["warnings"]!.AsArray().Select(w => w!.GetValue<string>())];

    /// <summary>Without <paramref name="endorsements"/> the KMS supplies its simulated TEE's VCEK itself.</summary>
    private static async Task<VaultResult> LoginAsync(SnpRevocationLists? crls, byte[]? endorsements = null)
    {
        await using var kms = await TestKms.StartUnsealedAsync(o => SimulatedTees.TrustingSimulated(o) with { Attestation = SimulatedTees.TrustingSimulated(o).Attestation with { SnpCrls = crls } });
        await AttestFlow.RegisterSignerAsync(kms.Client);
        using var instance = new FunctionInstance();
        var nonce = await AttestFlow.ChallengeAsync(kms.Client);
        return await AttestFlow.LoginAsync(kms.Client, "snp", instance.SnpReport(nonce), nonce, instance.CsrPem, endorsements: endorsements);
    }
}
