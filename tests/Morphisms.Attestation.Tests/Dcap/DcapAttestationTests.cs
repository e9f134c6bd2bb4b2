using Microsoft.Extensions.Time.Testing;
using Morphisms.Attestation.Abi.Dcap;
using Morphisms.Attestation.Collateral;
using Morphisms.Attestation.Validate;
using Morphisms.Attestation.Verify.Dcap;

namespace Morphisms.Attestation.Tests.Dcap;

public class DcapAttestationTests
{
    [VectorFact]
    public async Task An_up_to_date_production_td_is_affirmed_by_the_default_policy()
    {
        var (quote, options) = Row("tdx-emr-alibaba-automata");

        var result = await DcapAttestation.VerifyAsync(quote, options);

        Assert.Equal(AttestationStatus.Affirming, result.Status);
        Assert.Equal(TeeType.Tdx, result.Tee);
        Assert.Equal(TcbStatus.UpToDate, result.TcbStatus);
        Assert.Empty(result.Failures);
        Assert.IsType<TdxClaims>(result.Claims);
    }

    [VectorFact]
    public async Task An_accepted_sw_hardening_status_gives_a_warning_with_status_and_advisories()
    {
        var (quote, options) = Row("sgx-icelake-automata");

        var strict = await DcapAttestation.VerifyAsync(quote, options);
        Assert.Equal(AttestationStatus.Contraindicated, strict.Status);
        Assert.Equal(DcapPolicyChecks.TcbStatus, Assert.Single(strict.Failures).Check);

        var lenient = await DcapAttestation.VerifyAsync(quote, options,
            sgxPolicy: new SgxPolicy { AcceptedTcbStatuses = [TcbStatus.UpToDate, TcbStatus.SWHardeningNeeded] });
        Assert.Equal(AttestationStatus.Warning, lenient.Status);
        Assert.Equal(TcbStatus.SWHardeningNeeded, lenient.TcbStatus);
        Assert.Equal(["INTEL-SA-00615"], lenient.AdvisoryIds);
        Assert.Contains(lenient.Warnings, w => w.Contains("SWHardeningNeeded"));
    }

    [VectorFact]
    public async Task Verification_failures_and_policy_failures_are_reported_together()
    {
        var (quote, options) = Row("sgx-rocketlake-dcaprs"); // a debug enclave with a ConfigurationAndSWHardeningNeeded TCB

        var result = await DcapAttestation.VerifySgxAsync(quote, new SgxPolicy { MrEnclaves = [new byte[32]] }, options);

        Assert.Equal(
            new[] { DcapPolicyChecks.MrEnclave, DcapPolicyChecks.SgxDebug, DcapPolicyChecks.TcbStatus }.Order(),
            result.Failures.Select(f => f.Check).Order());
        Assert.Equal(TcbStatus.ConfigurationAndSWHardeningNeeded, result.TcbStatus);
        Assert.Equal(["INTEL-SA-00289", "INTEL-SA-00615"], result.AdvisoryIds.Order());
    }

    [VectorFact]
    public async Task A_no_matching_tcb_level_quote_is_refused_whatever_the_policy_accepts()
    {
        var (quote, options) = Row("tdx-emr-phala-no-tcb-level");
        var everything = new TdxPolicy { AcceptedTcbStatuses = TcbStatus.PlatformLevelStatuses.ToArray() };

        var result = await DcapAttestation.VerifyTdxAsync(quote, everything, options);

        Assert.Equal(AttestationStatus.Contraindicated, result.Status);
        Assert.Null(result.TcbStatus);
        Assert.Contains(result.Failures, f => f.Reason.Contains("no matching TCB level found"));
    }

    [VectorFact]
    public async Task Asking_for_one_tee_and_getting_the_other_is_a_failure()
    {
        var (quote, options) = Row("tdx-emr-alibaba-automata");
        var result = await DcapAttestation.VerifySgxAsync(quote, options: options);
        Assert.Contains(result.Failures, f => f.Check == DcapAttestation.TeeTypeCheck && f.Reason.Contains("tdx quote, not sgx"));
    }

    [VectorFact]
    public async Task Without_collateral_the_facade_rejects_and_still_returns_claims()
    {
        var quote = TestVectors.Read("sgx", "automata_icelake_00606a000000_v3_quote.bin");
        var result = await DcapAttestation.VerifyAsync(quote, new DcapVerifyOptions { Time = new FakeTimeProvider(QuoteSignatureTests.WithinPckValidity) });

        Assert.Equal(AttestationStatus.Contraindicated, result.Status);
        Assert.Contains(result.Failures, f => f.ToString() == "dcap.collateral.tcb_info: collateral: TCB info missing");
        Assert.Equal("a4f45c39dac622cb1dd32ddb35a52ec92db41d0fa88a1c911c49e59c534f61cd", Hex.Of(result.Claims.Measurement));
    }

    [VectorFact]
    public async Task A_malformed_quote_is_a_format_error()
    {
        var truncated = TestVectors.Read("sgx", "automata_icelake_00606a000000_v3_quote.bin")[..10];
        var e = await Assert.ThrowsAsync<EvidenceFormatException>(async () => await DcapAttestation.VerifyAsync(truncated));
        Assert.Equal("quote.header.pce_svn", e.Field);
        Assert.Contains("truncated at offset 10", e.Message);
    }

    private static (byte[] Quote, DcapVerifyOptions Options) Row(string name)
    {
        var row = DcapEndToEndCases.Get(name);
        return (TestVectors.Read(row.QuoteDir, row.QuoteFile),
            new DcapVerifyOptions { Time = new FakeTimeProvider(row.At), CollateralSource = row.OpenSource() });
    }
}
