using System.Security.Cryptography.X509Certificates;
using Morphisms.Attestation.Abi.Snp;
using Morphisms.Attestation.Trust;
using Morphisms.Attestation.Verify.Snp;

namespace Morphisms.Attestation.Tests.Snp;

public class SnpVerifierTests
{
    [VectorTheory]
    [MemberData(nameof(SnpVectors.ReportNames), MemberType = typeof(SnpVectors))]
    public void Every_real_report_verifies(string name)
    {
        var result = new SnpVerifier(SnpVectors.Options(name)).Verify(SnpVectors.Report(name), SnpVectors.Endorsements(name));

        Assert.True(result.Passed, string.Join("\n", result.Log.Failures));
        Assert.Equal(SnpVectors.Get(name).Product, result.Claims.Product);
        Assert.Equal(SnpVectors.Get(name).Product, result.Roots?.Product);
        Assert.False(result.Simulated);
    }

    [VectorFact]
    public void Vlek_fails_once_it_has_expired()
    {
        const string name = "trustee_milan_vlek_v3";
        var result = new SnpVerifier(SnpVectors.OptionsAt(SnpVectors.Gathered)).Verify(SnpVectors.Report(name), SnpVectors.Endorsements(name));

        var failure = Assert.Single(result.Log.Failures);
        Assert.Equal(SnpChecks.CertificateValidity, failure.Check);
        Assert.Contains("expired at 2025-12-10T22:14:21Z", failure.Reason);
        Assert.Contains("VLEK", failure.Reason);
    }

    [VectorFact]
    public void Certificate_not_yet_valid_fails()
    {
        const string name = "trustee_genoa_v3";
        var result = new SnpVerifier(SnpVectors.OptionsAt(new DateTimeOffset(2025, 1, 1, 0, 0, 0, TimeSpan.Zero)))
            .Verify(SnpVectors.Report(name), SnpVectors.Endorsements(name));

        var failure = Assert.Single(result.Log.Failures);
        Assert.Equal(SnpChecks.CertificateValidity, failure.Check);
        Assert.Contains("not valid before 2025-05-27", failure.Reason);
    }

    [VectorTheory]
    [InlineData("trustee_milan_vcek_badsig_legacy.der", 3, 0, 10, 169)]
    [InlineData("trustee_milan_vcek_badsig_new.der", 0, 0, 0, 30)]
    public void Badly_signed_vceks_parse_in_both_encodings_but_fail_the_chain(string file, byte bl, byte tee, byte snp, byte ucode)
    {
        var endorsements = SnpEndorsements.LoadFiles(TestVectors.Path("snp", file));
        var extensions = SnpKeyCertificateExtensions.Parse(endorsements.KeyCertificate);

        Assert.Equal("Milan-B0", extensions.ProductName);
        Assert.Equal(SnpProducts.Milan, extensions.ProductLine);
        Assert.Equal((bl, tee, snp, ucode), (extensions.BootloaderSpl, extensions.TeeSpl, extensions.SnpSpl, extensions.MicrocodeSpl));
        Assert.Equal(Enumerable.Range(0, 64).Select(i => (byte)i).ToArray(), extensions.HardwareId!.Value.ToArray());
        Assert.Null(extensions.CspId);
        Assert.Null(extensions.FmcSpl);

        var result = new SnpVerifier(SnpVectors.OptionsAt(SnpVectors.Gathered)).Verify(SnpVectors.Report("trustee_milan_v2"), endorsements);
        Assert.Contains(result.Log.Failures, f => f.Check == SnpChecks.Chain && f.Reason.Contains("signature does not verify"));
    }

    [VectorFact]
    public void Real_vcek_and_vlek_extensions_are_read()
    {
        var vcek = SnpKeyCertificateExtensions.Parse(SnpVectors.Endorsements("trustee_milan_v2").KeyCertificate);
        Assert.Equal("c38427a30d4c7af9d96f7a15b97269825a64cb76a2352ffd5d18115d89ad473f8e8c0bcd9a5d9286612bad4aadfb4426205a3b9e4fea82301135a170e477524e", Hex.Of(vcek.HardwareId!.Value));
        Assert.Equal(0, vcek.StructVersion);
        Assert.Equal(TcbVersion.FromParts(3, 0, 8, 115), vcek.ToTcbVersion(TcbLayout.Legacy));

        var vlek = SnpKeyCertificateExtensions.Parse(SnpVectors.Endorsements("trustee_milan_vlek_v3").KeyCertificate);
        Assert.Equal("Milan", vlek.ProductName);
        Assert.Equal("CN=cc-us-east-2.amazonaws.com", vlek.CspId);
        Assert.Null(vlek.HardwareId);
        Assert.Equal(TcbVersion.FromParts(4, 0, 24, 217), vlek.ToTcbVersion(TcbLayout.Legacy));
    }

    [VectorFact]
    public void Vcek_with_one_byte_changed_fails_the_chain()
    {
        var der = TestVectors.Read("snp", "trustee_milan_vcek.der");
        der[42]++;
        var endorsements = SnpEndorsements.Load(der);

        var result = new SnpVerifier(SnpVectors.OptionsAt(SnpVectors.Gathered)).Verify(SnpVectors.Report("trustee_milan_v2"), endorsements);

        Assert.Contains(result.Log.Failures, f => f.Check == SnpChecks.Chain);
    }

    [VectorFact]
    public void Asvk_supplied_in_place_of_the_ask_fails_the_chain()
    {
        var endorsements = SnpEndorsements.Load(
            TestVectors.Read("snp", "trustee_milan_vcek.der"),
            SnpVectors.Root("amd_asvk_milan.pem"));

        var result = new SnpVerifier(SnpVectors.OptionsAt(SnpVectors.Gathered)).Verify(SnpVectors.Report("trustee_milan_v2"), endorsements);

        var failure = Assert.Single(result.Log.Failures);
        Assert.Equal(SnpChecks.Chain, failure.Check);
        Assert.Contains("SEV-VLEK-Milan", failure.Reason);
    }

    [VectorFact]
    public void Anchors_holding_the_asvk_as_the_ask_fail_the_chain()
    {
        var milan = TrustAnchors.Vendor.FindAmdProduct("Milan")!;
        var swapped = new TrustAnchors([milan with { Ask = milan.Asvk! }], []);
        var options = SnpVectors.OptionsAt(SnpVectors.Gathered) with { Anchors = swapped };

        var result = new SnpVerifier(options).Verify(SnpVectors.Report("trustee_milan_v2"), SnpVectors.Endorsements("trustee_milan_v2"));

        Assert.Contains(result.Log.Failures, f => f.Check == SnpChecks.Chain && f.Reason.Contains("must be issued by the ASK 'SEV-Milan'"));
        Assert.Contains(result.Log.Failures, f => f.Check == SnpChecks.Chain && f.Reason.Contains("is not 'CN=SEV-VLEK-Milan"));
    }

    [VectorFact]
    public void Vlek_chain_through_the_ask_fails()
    {
        var endorsements = SnpEndorsements.Load(
            TestVectors.Read("snp", "trustee_milan_vlek.der"),
            SnpVectors.Root("amd_kds_cert_chain_vcek_milan.pem"));

        var result = new SnpVerifier(SnpVectors.OptionsAt(SnpVectors.VlekValid)).Verify(SnpVectors.Report("trustee_milan_vlek_v3"), endorsements);

        Assert.Contains(result.Log.Failures, f => f.Check == SnpChecks.Chain);
    }

    [VectorTheory]
    [InlineData("trustee_milan_v2", "trustee_milan_vcek.der", "amd_kds_cert_chain_vcek_milan.pem")]
    [InlineData("trustee_genoa_v3", "trustee_genoa_vcek.der", "amd_kds_cert_chain_vcek_genoa.pem")]
    [InlineData("trustee_milan_vlek_v3", "trustee_milan_vlek.der", "amd_kds_cert_chain_vlek_milan.pem")]
    public void Kds_cert_chain_supplied_with_the_evidence_is_accepted(string name, string keyFile, string chainFile)
    {
        var endorsements = SnpEndorsements.Load(TestVectors.Read("snp", keyFile), SnpVectors.Root(chainFile));
        Assert.Equal(2, endorsements.Chain.Count);

        var result = new SnpVerifier(SnpVectors.Options(name)).Verify(SnpVectors.Report(name), endorsements);

        Assert.True(result.Passed, string.Join("\n", result.Log.Failures));
    }

    [VectorTheory]
    [InlineData("Milan")]
    [InlineData("Genoa")]
    [InlineData("Turin")]
    public void Kds_cert_chains_in_the_vectors_are_the_embedded_roots(string product)
    {
        var roots = TrustAnchors.Vendor.FindAmdProduct(product)!;
        var lower = product.ToLowerInvariant();
        var vcekChain = SnpEndorsements.Load(SnpVectors.Root($"amd_kds_cert_chain_vcek_{lower}.pem"));
        var vlekChain = SnpEndorsements.Load(SnpVectors.Root($"amd_kds_cert_chain_vlek_{lower}.pem"));

        Assert.Equal(roots.Ask.RawData, vcekChain.KeyCertificate.RawData);
        Assert.Equal(roots.Asvk!.RawData, vlekChain.KeyCertificate.RawData);
        Assert.Equal(roots.Ark.RawData, Assert.Single(vcekChain.Chain).RawData);
        Assert.Equal(roots.Ark.RawData, Assert.Single(vlekChain.Chain).RawData);
    }

    [VectorFact]
    public void Azure_chain_pem_is_split_into_vcek_ask_and_ark()
    {
        var endorsements = SnpVectors.Endorsements("trustee_azure_milan_v2");

        Assert.Equal("SEV-VCEK", endorsements.KeyCertificate.GetNameInfo(X509NameType.SimpleName, false));
        Assert.Equal(["SEV-Milan", "ARK-Milan"], endorsements.Chain.Select(c => c.GetNameInfo(X509NameType.SimpleName, false)));
    }

    [VectorFact]
    public void Root_supplied_with_the_evidence_must_be_the_trusted_ark()
    {
        var endorsements = SnpEndorsements.Load(
            TestVectors.Read("snp", "trustee_milan_vcek.der"),
            [.. SnpVectors.Root("amd_ask_milan.pem"), .. SnpVectors.Root("amd_ark_genoa.pem")]);

        var result = new SnpVerifier(SnpVectors.OptionsAt(SnpVectors.Gathered)).Verify(SnpVectors.Report("trustee_milan_v2"), endorsements);

        var failure = Assert.Single(result.Log.Failures);
        Assert.Equal(SnpChecks.Chain, failure.Check);
        Assert.Contains("'ARK-Genoa') is not the trusted 'ARK-Milan'", failure.Reason);
    }

    [VectorFact]
    public void Another_chips_vcek_fails_signature_tcb_and_chip_id()
    {
        var result = new SnpVerifier(SnpVectors.OptionsAt(SnpVectors.Gathered))
            .Verify(SnpVectors.Report("trustee_milan_v2"), SnpVectors.Endorsements("gosevguest_milan_v2"));

        Assert.Equal([SnpChecks.Signature, SnpChecks.KeyTcb, SnpChecks.ChipId], result.Log.Failures.Select(f => f.Check));
        Assert.Contains("blSPL report 3 certificate 2", result.Log.Failures.Single(f => f.Check == SnpChecks.KeyTcb).Reason);
    }

    [VectorFact]
    public void Vlek_certificate_for_a_vcek_report_fails_the_signing_key_check()
    {
        var result = new SnpVerifier(SnpVectors.OptionsAt(SnpVectors.VlekValid))
            .Verify(SnpVectors.Report("trustee_milan_v2"), SnpVectors.Endorsements("trustee_milan_vlek_v3"));

        Assert.Contains(result.Log.Failures, f => f.Check == SnpChecks.SigningKey && f.Reason.Contains("VCEK"));
        Assert.Contains(result.Log.Failures, f => f.Check == SnpChecks.Signature);
    }

    [VectorFact]
    public void Genoa_report_with_a_milan_vcek_fails_product_and_chain()
    {
        var result = new SnpVerifier(SnpVectors.OptionsAt(SnpVectors.Gathered))
            .Verify(SnpVectors.Report("trustee_genoa_v3"), SnpVectors.Endorsements("trustee_milan_v2"));

        Assert.Contains(result.Log.Failures, f => f.Check == SnpChecks.Product && f.Reason.Contains("Genoa") && f.Reason.Contains("Milan"));
        Assert.Contains(result.Log.Failures, f => f.Check == SnpChecks.Chain);
        Assert.Contains(result.Log.Failures, f => f.Check == SnpChecks.Signature);
    }

    [VectorFact]
    public void Product_demanded_by_the_options_must_match()
    {
        var options = SnpVectors.OptionsAt(SnpVectors.Gathered) with { Product = "Genoa" };

        var result = new SnpVerifier(options).Verify(SnpVectors.Report("trustee_milan_v2"), SnpVectors.Endorsements("trustee_milan_v2"));

        Assert.Contains(result.Log.Failures, f => f.Check == SnpChecks.Product);
        Assert.Contains(result.Log.Failures, f => f.Check == SnpChecks.Chain);
    }

    [VectorFact]
    public void No_anchor_for_the_product_fails_the_chain()
    {
        var options = SnpVectors.OptionsAt(SnpVectors.Gathered) with
        {
            Anchors = new TrustAnchors([TrustAnchors.Vendor.FindAmdProduct("Milan")!], []),
        };

        var result = new SnpVerifier(options).Verify(SnpVectors.Report("trustee_genoa_v3"), SnpVectors.Endorsements("trustee_genoa_v3"));

        var failure = Assert.Single(result.Log.Failures);
        Assert.Equal(SnpChecks.Chain, failure.Check);
        Assert.Contains("no trusted AMD root", failure.Reason);
    }

    [VectorFact]
    public void Readme_tamper_recipes_fail_as_upstream_expects()
    {
        var verifier = new SnpVerifier(SnpVectors.OptionsAt(SnpVectors.Gathered));
        var endorsements = SnpVectors.Endorsements("trustee_milan_v2");

        var byte42 = SnpVectors.Report("trustee_milan_v2");
        byte42[42]++;
        Assert.Equal([SnpChecks.Signature], verifier.Verify(byte42, endorsements).Log.Failures.Select(f => f.Check));

        var bootloader = SnpVectors.Report("trustee_milan_v2");
        bootloader[0x180]++;
        Assert.Equal([SnpChecks.Signature, SnpChecks.KeyTcb], verifier.Verify(bootloader, endorsements).Log.Failures.Select(f => f.Check));
    }

    [VectorFact]
    public void Vendor_anchors_do_not_trust_a_foreign_root()
    {
        var fake = FakeAmd.Milan;
        var result = new SnpVerifier(SnpVectors.OptionsAt(FakeAmd.Now)).Verify(fake.Report(), new SnpEndorsements(fake.Vcek));

        Assert.Contains(result.Log.Failures, f => f.Check == SnpChecks.Chain);
        Assert.False(result.Simulated);
    }

    [Fact]
    public void Unreadable_certificate_is_a_format_error()
    {
        var e = Assert.Throws<EvidenceFormatException>(() => SnpEndorsements.Load([1, 2, 3]));
        Assert.Equal("vcek", e.Field);
    }
}
