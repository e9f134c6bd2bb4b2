using Morphisms.Attestation.Collateral;
using Morphisms.Attestation.Tests.Collateral;
using Morphisms.Attestation.Trust;
using Morphisms.Attestation.Verify.Dcap;
using static Morphisms.Attestation.Tests.Collateral.SyntheticCollateral;

namespace Morphisms.Attestation.Tests.Dcap;

/// <summary>
/// One quote of the vectors with the TCB inputs the README appendix lists for it (PCK SGX TCB
/// components, PCESVN, FMSPC, QE ISVSVN, TEE_TCB_SVN(2)) — transcribed, so these tests need no quote parser.
/// MISCSELECT 0 and ATTRIBUTES 15…e7… are the same in every QE report of the set; MRSIGNERSEAM and
/// SEAMATTRIBUTES are zero in every TD report (Intel-signed modules).
/// </summary>
public sealed record QuoteTcbCase(
    string Quote, string Set, int[] Components, ushort PceSvn, string Fmspc, ushort QeSvn, string? TeeTcbSvn, string? TeeTcbSvn2,
    string? Status, string? Platform, string? ModuleId, string? Module, string? Qe, string[] Advisories)
{
    public const string SgxQeSigner = "8c4f5775d796503e96137f77c68a829a0056ac8ded70140b081b094490c57bff";
    public const string TdxQeSigner = "dc9e2a7c6f948f17474e34a7fc43ed030f7c1563f1babddf6340c82e0e54a8c5";

    public bool IsTdx => TeeTcbSvn is not null;

    public PlatformTcb Platform_() => new(Convert.FromHexString(Fmspc), [0, 0], [.. Components.Select(c => (byte)c), .. new byte[16 - Components.Length]], PceSvn);

    public TdxTcb? Tdx() => TeeTcbSvn is null ? null
        : new TdxTcb(Convert.FromHexString(TeeTcbSvn), new byte[48], new byte[8]) { TeeTcbSvn2 = TeeTcbSvn2 is null ? null : Convert.FromHexString(TeeTcbSvn2) };

    public QeReportIdentity QeReport() => new(
        Convert.FromHexString(IsTdx ? TdxQeSigner : SgxQeSigner), (ushort)(IsTdx ? 2 : 1), QeSvn, 0,
        Convert.FromHexString("1500000000000000e700000000000000"));

    /// <inheritdoc />
    public override string ToString() => $"{Quote} @ {Set}";
}

public class TcbEvaluatorTests
{
    private const string NoMatch = "no matching TCB level found";

    /// <summary>
    /// Expected values are the README's, except the two marked: there the README compared all 16
    /// TEE_TCB_SVN bytes, while Intel's QVL (TcbLevelCheck.cpp, isTdxTcbHigherOrEqual) skips bytes 0–1
    /// when the module major version is not 0 and judges the module by its TDX_NN identity instead.
    /// </summary>
    public static readonly QuoteTcbCase[] Cases =
    [
        new("sgx/dcaprs_rocketlake_00a067110000_v3_quote.bin", "sgx-rocketlake-dcaprs", [11, 11, 2, 2, 255, 1], 13, "00a067110000", 10, null, null,
            "ConfigurationAndSWHardeningNeeded", "ConfigurationAndSWHardeningNeeded", null, null, "UpToDate", ["INTEL-SA-00289", "INTEL-SA-00615"]),
        new("sgx/dcaprs_rocketlake_00a067110000_v3_quote.bin", "sgx-rocketlake-phala", [11, 11, 2, 2, 255, 1], 13, "00a067110000", 10, null, null,
            "ConfigurationAndSWHardeningNeeded", "ConfigurationAndSWHardeningNeeded", null, null, "UpToDate", ["INTEL-SA-00289", "INTEL-SA-00615"]),
        new("sgx/phala_rocketlake_00a067110000_v3_quote.bin", "sgx-rocketlake-phala", [11, 11, 2, 2, 255, 1], 13, "00a067110000", 10, null, null,
            "ConfigurationAndSWHardeningNeeded", "ConfigurationAndSWHardeningNeeded", null, null, "UpToDate", ["INTEL-SA-00289", "INTEL-SA-00615"]),
        new("sgx/dcaprs_icelake_00606a000000_v3_quote.bin", "sgx-icelake-dcaprs-v2", [12, 12, 3, 3, 255, 255, 1], 13, "00606a000000", 9, null, null,
            "OutOfDate", "OutOfDate", null, null, "UpToDate", []),
        new("sgx/automata_icelake_00606a000000_v3_quote.bin", "sgx-icelake-automata", [14, 14, 3, 3, 255, 255, 1], 13, "00606a000000", 9, null, null,
            "SWHardeningNeeded", "SWHardeningNeeded", null, null, "UpToDate", ["INTEL-SA-00615"]),
        new("sgx/trustee_occlum_icelake_00606a000000_v3_quote.bin", "sgx-icelake-automata", [4, 4, 3, 3, 255, 255], 11, "00606a000000", 8, null, null,
            "OutOfDate", "OutOfDate", null, null, "UpToDate",
            ["INTEL-SA-00586", "INTEL-SA-00614", "INTEL-SA-00615", "INTEL-SA-00657", "INTEL-SA-00730", "INTEL-SA-00738", "INTEL-SA-00767", "INTEL-SA-00828", "INTEL-SA-00837", "INTEL-SA-00960"]),
        new("tdx/gotdxguest_spr_50806f000000_v4_quote_trailing39.bin", "tdx-spr-gotdxguest-2023", [3, 3, 2, 2, 2, 1, 0, 2], 11, "50806f000000", 4,
            "03000400000000000000000000000000", null, null, null, null, null, "UpToDate", []),
        new("tdx/gotdxguest_emr_90c06f000000_v5_quote.bin", "tdx-emr-gotdxguest-2026", [4, 4, 2, 2, 4, 1, 0, 5], 13, "90c06f000000", 7,
            "0b010400000000000000000000000000", "0d010400000000000000000000000000", "UpToDate", "UpToDate", "TDX_01", "UpToDate", null, []),
        // README: OutOfDate [INTEL-SA-00960, -00982, -00986] (all 16 bytes compared; byte 0 = module SVN 4 < 5).
        new("tdx/gotdxguest_gcp_spr_00806f050000_v4_quote_8000.bin", "tdx-spr-automata-2025-10", [7, 7, 2, 2, 3, 1, 0, 3], 11, "00806f050000", 6,
            "04010700000000000000000000000000", null, "UpToDate", "UpToDate", "TDX_01", "UpToDate", "UpToDate", []),
        new("tdx/dcaprs_spr_00806f050000_v4_quote_8000.bin", "tdx-spr-dcaprs-2024-09", [6, 6, 2, 2, 3, 1, 0, 3], 11, "00806f050000", 6,
            "04010700000000000000000000000000", null, "UpToDate", "UpToDate", "TDX_01", "UpToDate", "UpToDate", []),
        new("tdx/dcaprs_spr_00806f050000_v4_quote_8000.bin", "tdx-spr-dcaprs-2025-02", [6, 6, 2, 2, 3, 1, 0, 3], 11, "00806f050000", 6,
            "04010700000000000000000000000000", null, "OutOfDate", "OutOfDate", "TDX_01", "UpToDate", "UpToDate", ["INTEL-SA-00960", "INTEL-SA-00982", "INTEL-SA-00986"]),
        new("tdx/trustee_spr_50806f000000_v4_quote.bin", "tdx-spr-gotdxguest-2023", [5, 5, 13, 2, 3, 1, 0, 3], 11, "50806f000000", 4,
            "03000500000000000000000000000000", null, "UpToDate", "UpToDate", null, null, "UpToDate", []),
        new("tdx/trustee_emr_90c06f000000_v5_quote.bin", "tdx-emr-gotdxguest-2026", [1, 1, 2, 2, 3, 1, 0, 3], 13, "90c06f000000", 6,
            "05010200000000000000000000000000", "05010200000000000000000000000000", null, null, "TDX_01", null, null, []),
        new("tdx/trustee_gnr_00a06d080000_v4_quote.bin", "tdx-gnr-trustee-2025-10", [2, 2, 7, 7, 4, 1, 0, 2], 11, "00a06d080000", 7,
            "05030200000000000000000000000000", null, "OutOfDate", "OutOfDate", "TDX_03", "UpToDate", "UpToDate", []),
        // README: no matching TCB level (TEE_TCB_SVN[0] = 2 below every level's byte 0).
        new("tdx/trustee_azure_spr_00806f050000_v4_quote.bin", "tdx-spr-automata-2025-10", [6, 6, 2, 2, 3, 1, 0, 3], 11, "00806f050000", 5,
            "02010600000000000000000000000000", null, "OutOfDate", "OutOfDate", "TDX_01", "OutOfDate", "UpToDate", ["INTEL-SA-00960", "INTEL-SA-00982", "INTEL-SA-00986"]),
        new("tdx/automata_alibaba_emr_90c06f000000_v5_quote.bin", "tdx-emr-automata-2025-06", [2, 2, 2, 2, 3, 1, 0, 5], 13, "90c06f000000", 6,
            "05010200000000000000000000000000", "05010200000000000000000000000000", "UpToDate", "UpToDate", "TDX_01", "UpToDate", "UpToDate", []),
        new("tdx/phala_b0c06f000000_v4_quote.bin", "tdx-b0c06f-phala-2025-06", [3, 3, 2, 2, 4, 1, 0, 5], 11, "b0c06f000000", 6,
            "06010300000000000000000000000000", null, "UpToDate", "UpToDate", "TDX_01", "UpToDate", "UpToDate", []),
        new("tdx/phala_emr_90c06f000000_v5_quote_notcbmatch.bin", "tdx-emr-phala-2026-02", [3, 3, 2, 2, 4, 1, 0, 3], 13, "90c06f000000", 7,
            "07010300000000000000000000000000", "0d010300000000000000000000000000", null, null, "TDX_01", null, "UpToDate", []),
    ];

    public static TheoryData<int> CaseIndexes() => [.. Enumerable.Range(0, Cases.Length)];

    [VectorTheory]
    [MemberData(nameof(CaseIndexes))]
    public void Every_quote_gets_its_expected_tcb_status(int index)
    {
        var c = Cases[index];
        var set = CollateralVectors.Get(c.Set);
        var collateral = CollateralVerifier.Verify(set.Load(), set.Tee, TrustAnchors.Vendor, set.At, new CheckLog());
        var log = new CheckLog();

        var result = TcbEvaluator.Evaluate(collateral, c.Platform_(), c.Tdx(), c.QeReport(), log);

        Assert.Equal(c.Status, result.Status);
        Assert.Equal(c.Platform, result.PlatformStatus);
        Assert.Equal(c.ModuleId, result.TdxModuleIdentityId);
        Assert.Equal(c.Module, result.TdxModuleStatus);
        Assert.Equal(c.Qe, result.QeStatus);
        Assert.Equal(c.Advisories, result.AdvisoryIds);
        if (c.Status is null)
        {
            var failure = Assert.Single(log.Failures);
            Assert.Equal(TcbEvaluator.TcbStatusCheck, failure.Check);
            Assert.StartsWith(NoMatch, failure.Reason);
        }
        else
        {
            Assert.Empty(log.Failures);
        }
    }

    [VectorFact]
    public void Tcb_info_for_another_fmspc_is_refused()
    {
        var set = CollateralVectors.Get("sgx-rocketlake-dcaprs");
        var automata = Cases.Single(c => c.Quote.Contains("automata_icelake"));
        var collateral = CollateralVerifier.Verify(set.Load(), set.Tee, TrustAnchors.Vendor, set.At, new CheckLog());
        var log = new CheckLog();

        var result = TcbEvaluator.Evaluate(collateral, automata.Platform_(), null, automata.QeReport(), log);

        Assert.Null(result.Status);
        Assert.Null(result.PlatformStatus);
        var failure = Assert.Single(log.Failures);
        Assert.Equal(TcbEvaluator.TcbInfoMatchCheck, failure.Check);
        Assert.Equal("TCB info is for FMSPC 00a067110000, but the PCK certificate says 00606a000000", failure.Reason);
    }

    [VectorFact]
    public void Tcb_info_for_the_other_tee_is_refused()
    {
        var tdxSet = CollateralVectors.Get("tdx-spr-dcaprs-2025-02");
        var tdxCollateral = CollateralVerifier.Verify(tdxSet.Load(), TeeType.Tdx, TrustAnchors.Vendor, tdxSet.At, new CheckLog());
        var tdxQuote = Cases.Single(c => c.Set == "tdx-spr-dcaprs-2025-02");
        var log = new CheckLog();

        // The TDX quote's platform values, evaluated as if the quote were SGX (no TD report).
        var result = TcbEvaluator.Evaluate(tdxCollateral, tdxQuote.Platform_(), null, tdxQuote.QeReport(), log);

        Assert.Null(result.Status);
        Assert.Contains(log.Failures, f => f.Check == TcbEvaluator.TcbInfoMatchCheck && f.Reason == "TCB info is for tdx, but the quote is sgx");
        Assert.Contains(log.Failures, f => f.Check == TcbEvaluator.QeIdentityCheck && f.Reason.Contains("TD_QE"));
    }

    [Fact]
    public void Missing_tcb_info_is_a_failure_but_the_qe_status_is_still_reported()
    {
        var qe = EnclaveIdentity.Parse(QeIdentityJson("QE", QuoteTcbCase.SgxQeSigner, 1, (8, "UpToDate", [])));
        var log = new CheckLog();

        var result = TcbEvaluator.Evaluate(new VerifiedCollateral { Tee = TeeType.Sgx, QeIdentity = qe }, SgxPlatform([2], 13), null, SgxQe(9), log);

        Assert.Null(result.Status);
        Assert.Equal("UpToDate", result.QeStatus);
        Assert.Equal(TcbEvaluator.TcbStatusCheck, Assert.Single(log.Failures).Check);
    }

    [Theory]
    [InlineData("UpToDate", "OutOfDate")]
    [InlineData("SWHardeningNeeded", "OutOfDate")]
    [InlineData("ConfigurationNeeded", "OutOfDateConfigurationNeeded")]
    [InlineData("ConfigurationAndSWHardeningNeeded", "OutOfDateConfigurationNeeded")]
    [InlineData("OutOfDate", "OutOfDate")]
    [InlineData("OutOfDateConfigurationNeeded", "OutOfDateConfigurationNeeded")]
    public void An_out_of_date_qe_converges_with_the_platform_status(string platform, string expected)
    {
        var collateral = Verified(TeeType.Sgx, TcbInfoJson("SGX", [new SyntheticLevel(Svns(2), 13, platform, Advisories: ["INTEL-SA-1"])]),
            QeIdentityJson("QE", QuoteTcbCase.SgxQeSigner, 1, (8, "UpToDate", []), (6, "OutOfDate", ["INTEL-SA-00615"])));
        var log = new CheckLog();

        var result = TcbEvaluator.Evaluate(collateral, SgxPlatform([2], 13), null, SgxQe(7), log);

        Assert.Equal(expected, result.Status);
        Assert.Equal(platform, result.PlatformStatus);
        Assert.Equal("OutOfDate", result.QeStatus);
        Assert.Equal(["INTEL-SA-1", "INTEL-SA-00615"], result.AdvisoryIds);
        Assert.Empty(log.Failures);
    }

    [Fact]
    public void A_revoked_qe_revokes_everything()
    {
        var collateral = Verified(TeeType.Sgx, TcbInfoJson("SGX", [new SyntheticLevel(Svns(2), 13, "UpToDate")]),
            QeIdentityJson("QE", QuoteTcbCase.SgxQeSigner, 1, (8, "UpToDate", []), (2, "Revoked", [])));
        var log = new CheckLog();

        var result = TcbEvaluator.Evaluate(collateral, SgxPlatform([2], 13), null, SgxQe(3), log);

        Assert.Equal("Revoked", result.Status);
        var failure = Assert.Single(log.Failures);
        Assert.Equal(TcbEvaluator.TcbStatusCheck, failure.Check);
        Assert.Equal("TCB status is Revoked (platform UpToDate, QE Revoked)", failure.Reason);
    }

    [Fact]
    public void A_revoked_platform_level_is_a_failure()
    {
        var collateral = Verified(TeeType.Sgx, TcbInfoJson("SGX", [new SyntheticLevel(Svns(5), 13, "UpToDate"), new SyntheticLevel(Svns(2), 13, "Revoked")]), null);
        var log = new CheckLog();

        var result = TcbEvaluator.Evaluate(collateral, SgxPlatform([3], 13), null, SgxQe(3), log);

        Assert.Equal("Revoked", result.Status);
        Assert.Equal(TcbEvaluator.TcbStatusCheck, Assert.Single(log.Failures).Check);
    }

    [Fact]
    public void Pcesvn_below_every_level_matches_nothing()
    {
        var collateral = Verified(TeeType.Sgx, TcbInfoJson("SGX", [new SyntheticLevel(Svns(2), 13, "UpToDate")]), null);
        var log = new CheckLog();

        var result = TcbEvaluator.Evaluate(collateral, SgxPlatform([9], 12), null, SgxQe(3), log);

        Assert.Null(result.Status);
        Assert.StartsWith(NoMatch, Assert.Single(log.Failures).Reason);
    }

    [Fact]
    public void Levels_are_matched_in_intels_order_whatever_the_file_order()
    {
        var levels = new[]
        {
            new SyntheticLevel(Svns(2, 2), 13, "OutOfDate", Advisories: ["old"]),
            new SyntheticLevel(Svns(4, 4), 13, "UpToDate"),
            new SyntheticLevel(Svns(3, 3), 13, "SWHardeningNeeded", Advisories: ["mid"]),
        };
        var collateral = Verified(TeeType.Sgx, TcbInfoJson("SGX", levels), null);

        var result = TcbEvaluator.Evaluate(collateral, SgxPlatform([3, 9], 13), null, SgxQe(3), new CheckLog());

        Assert.Equal("SWHardeningNeeded", result.Status);
        Assert.Equal(["mid"], result.AdvisoryIds);
    }

    [Fact]
    public void An_unknown_status_in_the_matched_level_is_a_failure()
    {
        var collateral = Verified(TeeType.Sgx, TcbInfoJson("SGX", [new SyntheticLevel(Svns(2), 13, "Wobbly")]), null);
        var log = new CheckLog();

        var result = TcbEvaluator.Evaluate(collateral, SgxPlatform([2], 13), null, SgxQe(3), log);

        Assert.Null(result.Status);
        Assert.Contains("Wobbly", Assert.Single(log.Failures).Reason);
    }

    [Theory]
    [InlineData("mrsigner", "QE MRSIGNER")]
    [InlineData("prodid", "QE ISVPRODID 1 is not 2")]
    [InlineData("attributes", "QE ATTRIBUTES")]
    [InlineData("miscselect", "QE MISCSELECT 00000004")]
    [InlineData("isvsvn", "no QE identity TCB level covers QE ISVSVN 1")]
    public void A_quoting_enclave_that_is_not_intels_is_refused(string what, string reason)
    {
        var collateral = Verified(TeeType.Sgx, TcbInfoJson("SGX", [new SyntheticLevel(Svns(2), 13, "UpToDate")]),
            QeIdentityJson("QE", QuoteTcbCase.SgxQeSigner, what == "prodid" ? 2 : 1, (8, "UpToDate", []), (2, "OutOfDate", [])));
        var qe = SgxQe(9);
        qe = what switch
        {
            "mrsigner" => qe with { MrSigner = new byte[32] },
            "attributes" => qe with { Attributes = Convert.FromHexString("1700000000000000e700000000000000") },
            "miscselect" => qe with { MiscSelect = 4 },
            "isvsvn" => qe with { IsvSvn = 1 },
            _ => qe,
        };
        var log = new CheckLog();

        var result = TcbEvaluator.Evaluate(collateral, SgxPlatform([2], 13), null, qe, log);

        Assert.Null(result.Status);
        Assert.Equal("UpToDate", result.PlatformStatus);
        var failure = Assert.Single(log.Failures);
        Assert.Equal(TcbEvaluator.QeIdentityCheck, failure.Check);
        Assert.StartsWith(reason, failure.Reason);
    }

    [Theory]
    [InlineData(4, "OutOfDate", "OutOfDate")]
    [InlineData(6, "UpToDate", "UpToDate")]
    [InlineData(1, "Revoked", "Revoked")]
    public void The_tdx_module_identity_status_converges_with_the_platform(int moduleSvn, string module, string expected)
    {
        var collateral = TdxCollateral(("TDX_01", [(6, "UpToDate"), (4, "OutOfDate"), (1, "Revoked")]));
        var log = new CheckLog();

        var result = TcbEvaluator.Evaluate(collateral, SgxPlatform([2], 13), TdxReport(moduleSvn, 1, 3), TdxQe(4), log);

        Assert.Equal(expected, result.Status);
        Assert.Equal("UpToDate", result.PlatformStatus);
        Assert.Equal(module, result.TdxModuleStatus);
        Assert.Equal(expected == "Revoked", log.Failures.Count == 1);
    }

    [Fact]
    public void A_module_major_version_without_an_identity_is_refused()
    {
        var collateral = TdxCollateral(("TDX_01", [(2, "UpToDate")]));
        var log = new CheckLog();

        var result = TcbEvaluator.Evaluate(collateral, SgxPlatform([2], 13), TdxReport(5, 3, 3), TdxQe(4), log);

        Assert.Null(result.Status);
        var failure = Assert.Single(log.Failures);
        Assert.Equal(TcbEvaluator.TdxModuleCheck, failure.Check);
        Assert.Equal("TCB info has no TDX module identity TDX_03 (has TDX_01)", failure.Reason);
    }

    [Fact]
    public void A_module_not_signed_by_intel_is_refused()
    {
        var collateral = TdxCollateral(("TDX_01", [(2, "UpToDate")]));
        var report = TdxReport(5, 1, 3) with { MrSignerSeam = Enumerable.Repeat((byte)0xAB, 48).ToArray() };
        var log = new CheckLog();

        var result = TcbEvaluator.Evaluate(collateral, SgxPlatform([2], 13), report, TdxQe(4), log);

        Assert.Null(result.Status);
        var failure = Assert.Single(log.Failures);
        Assert.Equal(TcbEvaluator.TdxModuleCheck, failure.Check);
        Assert.StartsWith("MRSIGNERSEAM abab", failure.Reason);
    }

    [Fact]
    public void Nonzero_seam_attributes_are_refused()
    {
        var collateral = TdxCollateral(("TDX_01", [(2, "UpToDate")]));
        var report = TdxReport(5, 1, 3) with { SeamAttributes = [1, 0, 0, 0, 0, 0, 0, 0] };
        var log = new CheckLog();

        TcbEvaluator.Evaluate(collateral, SgxPlatform([2], 13), report, TdxQe(4), log);

        Assert.Contains(log.Failures, f => f.Check == TcbEvaluator.TdxModuleCheck && f.Reason.StartsWith("SEAMATTRIBUTES 0100000000000000"));
    }

    [Fact]
    public void Module_major_zero_compares_all_sixteen_tee_tcb_svn_bytes()
    {
        var collateral = Verified(TeeType.Tdx, TcbInfoJson("TDX",
        [
            new SyntheticLevel(Svns(2), 13, "UpToDate", Svns(5, 0, 3)),
            new SyntheticLevel(Svns(2), 13, "OutOfDate", Svns(3, 0, 3), ["INTEL-SA-old"]),
        ]), null);

        var result = TcbEvaluator.Evaluate(collateral, SgxPlatform([2], 13), TdxReport(4, 0, 3), TdxQe(4), new CheckLog());

        Assert.Equal("OutOfDate", result.Status);
        Assert.Null(result.TdxModuleIdentityId);
        Assert.Null(result.TdxModuleStatus);
    }

    [Fact]
    public void A_td_launched_before_a_module_update_is_advised_to_relaunch()
    {
        var collateral = Verified(TeeType.Tdx, TcbInfoJson("TDX",
            [
                new SyntheticLevel(Svns(2), 13, "UpToDate", Svns(5, 0, 3)),
                new SyntheticLevel(Svns(2), 13, "OutOfDate", Svns(5, 0, 2)),
            ],
            modules: [new SyntheticModule("TDX_01", [(6, "UpToDate"), (4, "OutOfDate")])]),
            QeIdentityJson("TD_QE", QuoteTcbCase.TdxQeSigner, 2, (4, "UpToDate", [])));
        var launched = TdxReport(4, 1, 2);

        var without = TcbEvaluator.Evaluate(collateral, SgxPlatform([2], 13), launched, TdxQe(4), new CheckLog());
        var updated = TcbEvaluator.Evaluate(collateral, SgxPlatform([2], 13), launched with { TeeTcbSvn2 = Convert.FromHexString("06010300000000000000000000000000") }, TdxQe(4), new CheckLog());
        var notUpdated = TcbEvaluator.Evaluate(collateral, SgxPlatform([2], 13), launched with { TeeTcbSvn2 = Convert.FromHexString("04010200000000000000000000000000") }, TdxQe(4), new CheckLog());

        Assert.Equal("OutOfDate", without.Status);
        Assert.Equal("TDRelaunchAdvised", updated.Status);
        Assert.Equal("OutOfDate", notUpdated.Status);
    }

    private static VerifiedCollateral TdxCollateral(params (string Id, (int, string)[] Levels)[] modules) =>
        Verified(TeeType.Tdx, TcbInfoJson("TDX", [new SyntheticLevel(Svns(2), 13, "UpToDate", Svns(0, 0, 3))],
                modules: modules.Select(m => new SyntheticModule(m.Id, m.Levels))),
            QeIdentityJson("TD_QE", QuoteTcbCase.TdxQeSigner, 2, (4, "UpToDate", [])));

    private static PlatformTcb SgxPlatform(int[] components, ushort pceSvn) =>
        new(Convert.FromHexString(SyntheticCollateral.Fmspc), [0, 0], [.. Svns(components).Select(c => (byte)c)], pceSvn);

    private static QeReportIdentity SgxQe(ushort isvSvn) =>
        new(Convert.FromHexString(QuoteTcbCase.SgxQeSigner), 1, isvSvn, 0, Convert.FromHexString("1500000000000000e700000000000000"));

    private static QeReportIdentity TdxQe(ushort isvSvn) =>
        new(Convert.FromHexString(QuoteTcbCase.TdxQeSigner), 2, isvSvn, 0, Convert.FromHexString("1500000000000000e700000000000000"));

    private static TdxTcb TdxReport(int moduleSvn, int major, int third) =>
        new([.. Svns(moduleSvn, major, third).Select(c => (byte)c)], new byte[48], new byte[8]);
}
