using Morphisms.Attestation.Abi.Dcap;
using Morphisms.Attestation.Collateral;
using Morphisms.Attestation.Validate;
using Morphisms.Attestation.Verify.Dcap;

namespace Morphisms.Attestation.Tests.Dcap;

/// <summary>Each knob of the SGX and TDX policies, exercised on claims parsed from real quotes.</summary>
public class PolicyTests
{
    private static readonly TcbEvaluation UpToDate = new() { Status = TcbStatus.UpToDate, PlatformStatus = TcbStatus.UpToDate, QeStatus = TcbStatus.UpToDate };

    private static readonly TcbEvaluation SwHardening = new()
    {
        Status = TcbStatus.SWHardeningNeeded, PlatformStatus = TcbStatus.SWHardeningNeeded, QeStatus = TcbStatus.UpToDate, AdvisoryIds = ["INTEL-SA-00615"],
    };

    [VectorFact]
    public void The_default_sgx_policy_accepts_a_production_enclave_with_an_up_to_date_tcb()
    {
        var log = SgxValidator.Validate(Sgx("automata_icelake_00606a000000_v3_quote.bin"), UpToDate);
        Assert.True(log.Passed);
        Assert.Empty(log.Warnings);
    }

    [VectorFact]
    public void A_debug_enclave_is_rejected_by_default_and_accepted_only_when_allowed()
    {
        // A real debug enclave: ATTRIBUTES.FLAGS = 0x07 (INIT | DEBUG | MODE64BIT).
        var debug = Sgx("dcaprs_rocketlake_00a067110000_v3_quote.bin");
        Assert.True(debug.DebugAllowed);
        Assert.Equal([DcapPolicyChecks.SgxDebug], Checks(SgxValidator.Validate(debug, UpToDate)));
        Assert.True(SgxValidator.Validate(debug, UpToDate, new SgxPolicy { AllowDebug = true }).Passed);

        // And the bit alone decides: set it on a production enclave's claims.
        var production = Sgx("automata_icelake_00606a000000_v3_quote.bin");
        var attributes = production.Attributes.ToArray();
        attributes[0] |= (byte)SgxReportBody.DebugFlag;
        var flipped = production with { Report = production.Report with { Attributes = attributes } };
        Assert.True(flipped.DebugAllowed);
        Assert.Equal([DcapPolicyChecks.SgxDebug], Checks(SgxValidator.Validate(flipped, UpToDate)));
    }

    [VectorFact]
    public void Sgx_reference_values_each_fail_on_their_own()
    {
        var claims = Sgx("automata_icelake_00606a000000_v3_quote.bin");
        var mrEnclave = claims.MrEnclave.ToArray();
        var mrSigner = claims.MrSigner.ToArray();

        var matching = new SgxPolicy
        {
            MrEnclaves = [new byte[32], mrEnclave],
            MrSigner = mrSigner,
            IsvProdId = 0,
            MinimumIsvSvn = 0,
            ReportData = new byte[64],
        };
        Assert.True(SgxValidator.Validate(claims, UpToDate, matching).Passed);

        Assert.Equal([DcapPolicyChecks.MrEnclave], Checks(SgxValidator.Validate(claims, UpToDate, matching with { MrEnclaves = [new byte[32]] })));
        Assert.Equal([DcapPolicyChecks.MrSigner], Checks(SgxValidator.Validate(claims, UpToDate, matching with { MrSigner = Flip(mrSigner) })));
        Assert.Equal([DcapPolicyChecks.IsvProdId], Checks(SgxValidator.Validate(claims, UpToDate, matching with { IsvProdId = 1 })));
        Assert.Equal([DcapPolicyChecks.IsvSvn], Checks(SgxValidator.Validate(claims, UpToDate, matching with { MinimumIsvSvn = 1 })));
        Assert.Equal([DcapPolicyChecks.SgxReportData], Checks(SgxValidator.Validate(claims, UpToDate, matching with { ReportData = [1] })));
    }

    [VectorFact]
    public void Report_data_may_be_given_as_a_prefix_that_the_rest_must_follow_with_zeros()
    {
        var claims = Sgx("phala_rocketlake_00a067110000_v3_quote.bin"); // "Hello, world!" then zeros
        Assert.True(SgxValidator.Validate(claims, UpToDate, new SgxPolicy { ReportData = "Hello, world!"u8.ToArray() }).Passed);
        Assert.False(SgxValidator.Validate(claims, UpToDate, new SgxPolicy { ReportData = "Hello"u8.ToArray() }).Passed);
        Assert.True(SgxValidator.Validate(claims, UpToDate, new SgxPolicy { ReportData = claims.ReportData.ToArray() }).Passed);
        Assert.False(SgxValidator.Validate(claims, UpToDate, new SgxPolicy { ReportData = new byte[65] }).Passed);
    }

    [VectorFact]
    public void Tcb_statuses_other_than_up_to_date_fail_by_default_and_warn_when_accepted()
    {
        var claims = Sgx("automata_icelake_00606a000000_v3_quote.bin");

        var rejected = SgxValidator.Validate(claims, SwHardening);
        var failure = Assert.Single(rejected.Failures);
        Assert.Equal(DcapPolicyChecks.TcbStatus, failure.Check);
        Assert.Contains("SWHardeningNeeded is not accepted", failure.Reason);
        Assert.Contains("INTEL-SA-00615", failure.Reason);

        var accepted = SgxValidator.Validate(claims, SwHardening, new SgxPolicy { AcceptedTcbStatuses = [TcbStatus.UpToDate, TcbStatus.SWHardeningNeeded] });
        Assert.True(accepted.Passed);
        var warning = Assert.Single(accepted.Warnings);
        Assert.Contains("SWHardeningNeeded accepted by policy [INTEL-SA-00615]", warning);
        Assert.Equal(AttestationStatus.Warning, AttestationResult.From(claims, accepted, SwHardening.Status, SwHardening.AdvisoryIds).Status);
    }

    [VectorFact]
    public void Accepted_advisories_when_set_must_cover_every_advisory()
    {
        var claims = Sgx("automata_icelake_00606a000000_v3_quote.bin");
        var policy = new SgxPolicy { AcceptedTcbStatuses = [TcbStatus.UpToDate, TcbStatus.SWHardeningNeeded] };

        Assert.True(SgxValidator.Validate(claims, SwHardening, policy with { AcceptedAdvisoryIds = ["INTEL-SA-00615"] }).Passed);
        var log = SgxValidator.Validate(claims, SwHardening, policy with { AcceptedAdvisoryIds = ["INTEL-SA-00289"] });
        Assert.Equal([DcapPolicyChecks.TcbAdvisory], Checks(log));
        Assert.Contains("INTEL-SA-00615", log.Failures[0].Reason);
    }

    [VectorFact]
    public void An_unknown_tcb_status_is_never_accepted()
    {
        var claims = Sgx("automata_icelake_00606a000000_v3_quote.bin");
        Assert.Equal([DcapPolicyChecks.TcbStatus], Checks(SgxValidator.Validate(claims, null)));
        Assert.Equal([DcapPolicyChecks.TcbStatus], Checks(SgxValidator.Validate(claims, new TcbEvaluation { PlatformStatus = TcbStatus.UpToDate })));
        Assert.Equal([DcapPolicyChecks.TcbStatus], Checks(SgxValidator.Validate(claims, new TcbEvaluation { Status = TcbStatus.Revoked },
            new SgxPolicy { AcceptedTcbStatuses = [TcbStatus.UpToDate, TcbStatus.OutOfDate] })));
    }

    [VectorFact]
    public void The_default_tdx_policy_accepts_a_production_td_with_an_up_to_date_tcb()
    {
        var log = TdxValidator.Validate(Tdx("automata_alibaba_emr_90c06f000000_v5_quote.bin"), UpToDate);
        Assert.True(log.Passed);
    }

    [VectorFact]
    public void A_debug_td_is_rejected_by_default()
    {
        // A real debug TD: TD_ATTRIBUTES byte 0 = 0x01 (TUD.DEBUG).
        var debug = Tdx("trustee_spr_50806f000000_v4_quote.bin");
        Assert.True(debug.DebugAllowed);
        Assert.Equal([DcapPolicyChecks.TdxDebug], Checks(TdxValidator.Validate(debug, UpToDate)));
        Assert.True(TdxValidator.Validate(debug, UpToDate, new TdxPolicy { AllowDebug = true }).Passed);

        var production = Tdx("gotdxguest_emr_90c06f000000_v5_quote.bin");
        var attributes = production.TdAttributes.ToArray();
        attributes[0] |= TdReportBody.DebugFlag;
        var flipped = production with { Report = production.Report with { TdAttributes = attributes } };
        Assert.Equal([DcapPolicyChecks.TdxDebug], Checks(TdxValidator.Validate(flipped, UpToDate)));
    }

    [VectorFact]
    public void The_real_tds_set_sept_ve_disable_or_pks_and_nothing_the_policy_refuses()
    {
        // TD_ATTRIBUTES as the ABI numbers them: most real TDs set only SEPT_VE_DISABLE (bit 28), go-tdx-guest's SPR TD
        // only PKS (bit 30), the Azure TD none; so the default policy must not require SEPT_VE_DISABLE.
        Assert.Equal(TdReportBody.SeptVeDisableFlag, Tdx("automata_alibaba_emr_90c06f000000_v5_quote.bin").Report.Attributes);
        Assert.Equal(TdReportBody.SeptVeDisableFlag, Tdx("gotdxguest_emr_90c06f000000_v5_quote.bin").Report.Attributes);
        Assert.Equal(1UL << 30, Tdx("gotdxguest_spr_50806f000000_v4_quote_trailing39.bin").Report.Attributes);
        Assert.Equal(0UL, Tdx("trustee_azure_spr_00806f050000_v4_quote.bin").Report.Attributes);
        foreach (var file in new[] { "gotdxguest_emr_90c06f000000_v5_quote.bin", "gotdxguest_spr_50806f000000_v4_quote_trailing39.bin", "trustee_azure_spr_00806f050000_v4_quote.bin" })
        {
            Assert.True(TdxValidator.Validate(Tdx(file), UpToDate).Passed, file);
        }

        // Bits outside TUD and MIGRATABLE do not weaken the TD: SEPT_VE_DISABLE, LASS, PKS, KL, PERFMON.
        var production = Tdx("trustee_azure_spr_00806f050000_v4_quote.bin");
        foreach (var bit in new[] { 16, 27, 28, 30, 31, 63 })
        {
            Assert.True(TdxValidator.Validate(WithTdAttribute(production, bit), UpToDate).Passed, $"bit {bit}");
        }
    }

    [VectorTheory]
    [InlineData(1)]
    [InlineData(4)] // HGS_PLUS_PROF
    [InlineData(5)] // PERF_PROF
    [InlineData(6)] // PMT_PROF
    [InlineData(7)]
    public void A_td_with_any_other_tud_bit_is_refused_even_where_debug_is_allowed(int bit)
    {
        var flipped = WithTdAttribute(Tdx("gotdxguest_emr_90c06f000000_v5_quote.bin"), bit);
        Assert.False(flipped.DebugAllowed);

        var log = TdxValidator.Validate(flipped, UpToDate);
        Assert.Equal([DcapPolicyChecks.TdxUnderDebug], Checks(log));
        Assert.Contains($"bits 0x{1 << bit:x2}", log.Failures[0].Reason, StringComparison.Ordinal);
        Assert.Equal([DcapPolicyChecks.TdxUnderDebug], Checks(TdxValidator.Validate(flipped, UpToDate, new TdxPolicy { AllowDebug = true })));

        // DEBUG beside it: each is named, and allowing debug lifts only DEBUG's check.
        var both = WithTdAttribute(flipped, 0);
        Assert.Equal([DcapPolicyChecks.TdxDebug, DcapPolicyChecks.TdxUnderDebug], Checks(TdxValidator.Validate(both, UpToDate)));
        Assert.Equal([DcapPolicyChecks.TdxUnderDebug], Checks(TdxValidator.Validate(both, UpToDate, new TdxPolicy { AllowDebug = true })));
    }

    [VectorFact]
    public void A_migratable_td_is_refused_unless_allowed_and_then_warned_about()
    {
        var production = Tdx("gotdxguest_emr_90c06f000000_v5_quote.bin");
        var migratable = WithTdAttribute(production, 29);
        Assert.True(migratable.Report.Migratable);
        Assert.False(production.Report.Migratable);

        var refused = TdxValidator.Validate(migratable, UpToDate);
        Assert.Equal([DcapPolicyChecks.TdxMigratable], Checks(refused));
        Assert.Contains("migration TD", refused.Failures[0].Reason, StringComparison.Ordinal);

        var allowed = TdxValidator.Validate(migratable, UpToDate, new TdxPolicy { AllowMigratable = true });
        Assert.True(allowed.Passed);
        Assert.Contains(allowed.Warnings, w => w.Contains("MIGRATABLE accepted by policy", StringComparison.Ordinal));

        // The opt-out says nothing where it is not relied on.
        var unused = TdxValidator.Validate(production, UpToDate, new TdxPolicy { AllowMigratable = true });
        Assert.True(unused.Passed);
        Assert.Empty(unused.Warnings);
    }

    [VectorFact]
    public void Tdx_reference_values_each_fail_on_their_own()
    {
        var claims = Tdx("trustee_gnr_00a06d080000_v4_quote.bin"); // non-zero MRCONFIGID and RTMR0-2
        var matching = new TdxPolicy
        {
            MrTds = [claims.MrTd.ToArray()],
            Rtmr0 = claims.Rtmr0.ToArray(),
            Rtmr1 = claims.Rtmr1.ToArray(),
            Rtmr2 = claims.Rtmr2.ToArray(),
            Rtmr3 = claims.Rtmr3.ToArray(),
            MrConfigId = claims.MrConfigId.ToArray(),
            MrOwner = new byte[48],
            MrOwnerConfig = new byte[48],
            ReportData = claims.ReportData[..48].ToArray(),
        };
        Assert.True(TdxValidator.Validate(claims, UpToDate, matching).Passed);

        Assert.Equal([DcapPolicyChecks.MrTd], Checks(TdxValidator.Validate(claims, UpToDate, matching with { MrTds = [Flip(claims.MrTd.ToArray())] })));
        Assert.Equal([DcapPolicyChecks.Rtmr(0)], Checks(TdxValidator.Validate(claims, UpToDate, matching with { Rtmr0 = Flip(claims.Rtmr0.ToArray()) })));
        Assert.Equal([DcapPolicyChecks.Rtmr(1)], Checks(TdxValidator.Validate(claims, UpToDate, matching with { Rtmr1 = Flip(claims.Rtmr1.ToArray()) })));
        Assert.Equal([DcapPolicyChecks.Rtmr(2)], Checks(TdxValidator.Validate(claims, UpToDate, matching with { Rtmr2 = Flip(claims.Rtmr2.ToArray()) })));
        Assert.Equal([DcapPolicyChecks.Rtmr(3)], Checks(TdxValidator.Validate(claims, UpToDate, matching with { Rtmr3 = Flip(claims.Rtmr3.ToArray()) })));
        Assert.Equal([DcapPolicyChecks.MrConfigId], Checks(TdxValidator.Validate(claims, UpToDate, matching with { MrConfigId = new byte[48] })));
        Assert.Equal([DcapPolicyChecks.MrOwner], Checks(TdxValidator.Validate(claims, UpToDate, matching with { MrOwner = Flip(new byte[48]) })));
        Assert.Equal([DcapPolicyChecks.MrOwnerConfig], Checks(TdxValidator.Validate(claims, UpToDate, matching with { MrOwnerConfig = Flip(new byte[48]) })));
        Assert.Equal([DcapPolicyChecks.TdxReportData], Checks(TdxValidator.Validate(claims, UpToDate, matching with { ReportData = new byte[64] })));
    }

    [VectorFact]
    public void Tdx_tcb_knobs_behave_as_sgx_ones()
    {
        var claims = Tdx("automata_alibaba_emr_90c06f000000_v5_quote.bin");
        var outOfDate = new TcbEvaluation { Status = TcbStatus.OutOfDate, AdvisoryIds = ["INTEL-SA-00960"] };

        Assert.Equal([DcapPolicyChecks.TcbStatus], Checks(TdxValidator.Validate(claims, outOfDate)));
        var accepting = new TdxPolicy { AcceptedTcbStatuses = [TcbStatus.UpToDate, TcbStatus.OutOfDate] };
        var accepted = TdxValidator.Validate(claims, outOfDate, accepting);
        Assert.True(accepted.Passed);
        Assert.Single(accepted.Warnings);
        Assert.Equal([DcapPolicyChecks.TcbAdvisory], Checks(TdxValidator.Validate(claims, outOfDate, accepting with { AcceptedAdvisoryIds = [] })));
        Assert.Equal([DcapPolicyChecks.TcbStatus], Checks(TdxValidator.Validate(claims, null, accepting)));
    }

    private static SgxClaims Sgx(string file) => (SgxClaims)DcapClaims.FromQuote(DcapQuote.Parse(TestVectors.Read("sgx", file)));

    private static TdxClaims Tdx(string file) => (TdxClaims)DcapClaims.FromQuote(DcapQuote.Parse(TestVectors.Read("tdx", file)));

    /// <summary>
    /// The claims with TD_ATTRIBUTES bit <paramref name="bit"/> set in the body bytes (TD_ATTRIBUTES is at offset 120 of the
    /// body), parsed again, so the test covers where the parser reads the field too.
    /// </summary>
    private static TdxClaims WithTdAttribute(TdxClaims claims, int bit)
    {
        var body = claims.Report.Raw.ToArray();
        body[120 + (bit / 8)] |= (byte)(1 << (bit % 8));
        return claims with { Report = TdReportBody.Parse(body) };
    }

    private static string[] Checks(CheckLog log) => [.. log.Failures.Select(f => f.Check)];

    private static byte[] Flip(byte[] value)
    {
        var copy = (byte[])value.Clone();
        copy[0] ^= 0xFF;
        return copy;
    }
}
