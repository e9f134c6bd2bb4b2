using Microsoft.Extensions.Time.Testing;
using Morphisms.Attestation.Collateral;
using Morphisms.Attestation.Abi.Dcap;
using Morphisms.Attestation.Tests.Dcap;
using Morphisms.Attestation.Validate;
using Morphisms.Attestation.Verify.Dcap;

namespace Morphisms.Attestation.Tests.Collateral;

/// <summary>
/// A relying party's own collateral against what an attester offers, on real Intel collateral for the TDX FMSPC
/// 00806f050000: September 2024 (tcbEvaluationDataNumber 16, the dcap-rs SPR quote UpToDate) and February 2025 (17,
/// after a TCB recovery that made the same quote OutOfDate).
/// </summary>
public class OfferedCollateralSourceTests
{
    private static readonly DcapCollateralRequest Spr = new(TeeType.Tdx, "00806f050000", PckCaType.Platform);

    [VectorFact]
    public async Task Collateral_older_than_the_own_is_replaced_and_the_verdict_follows_the_own()
    {
        var own = DcapEndToEndCases.Get("tdx-spr-dcaprs-2025");
        var offered = await Load("tdx-spr-dcaprs-2024");
        var quote = TestVectors.Read(own.QuoteDir, own.QuoteFile);
        var time = new FakeTimeProvider(own.At);

        var judged = await DcapVerifier.VerifyAsync(quote, new DcapVerifyOptions { Time = time, CollateralSource = new OfferedCollateralSource(own.OpenSource(), offered) });
        var asSent = await DcapVerifier.VerifyAsync(quote, new DcapVerifyOptions { Time = time, Collateral = offered });

        Assert.Equal(TcbStatus.OutOfDate, judged.Tcb!.Status);
        Assert.Empty(judged.Log.Failures);
        Assert.Equal(17, judged.Tcb.TcbEvaluationDataNumber);

        // Taken as sent, the pre-recovery collateral rates the platform UpToDate (here it has also expired; within its
        // 30 days it would not have, and nothing else would have stopped it).
        Assert.Equal(TcbStatus.UpToDate, asSent.Tcb!.Status);
        Assert.Equal(16, asSent.Tcb.TcbEvaluationDataNumber);
    }

    [VectorFact]
    public async Task Every_older_item_loses_and_the_own_collateral_is_returned_as_it_is()
    {
        var own = await Load("tdx-spr-dcaprs-2025");
        var offered = await Load("tdx-spr-dcaprs-2024") with
        {
            PckCrl = Vector("tdx/gotdxguest_pck_platform_crl_20230608.der"),
            RootCaCrl = Vector("tdx/gotdxguest_root_ca_crl_20230403.der"),
        };

        Assert.Same(own, OfferedCollateralSource.Newest(Spr, own, offered));
    }

    [VectorFact]
    public async Task Newer_collateral_is_used_as_offered()
    {
        // The own store is stale; the attester brings Intel's later documents, which it could not have forged.
        var own = await Load("tdx-spr-dcaprs-2024");
        var offered = await Load("tdx-spr-dcaprs-2025");

        Assert.Same(offered, OfferedCollateralSource.Newest(Spr, own, offered));
    }

    [VectorFact]
    public async Task Items_are_judged_one_by_one()
    {
        var own = await Load("tdx-spr-dcaprs-2025") with { PckCrl = Vector("tdx/automata_pck_platform_crl_20250604.der") };
        var offered = await Load("tdx-spr-dcaprs-2025") with { PckCrl = Vector("sgx/dcaprs_pck_platform_crl_20250213.der"), RootCaCrl = Vector("sgx/automata_root_ca_crl_20250320.der") };

        var chosen = OfferedCollateralSource.Newest(Spr, own, offered);

        Assert.Same(own.PckCrl, chosen.PckCrl); // June 2025 beats February
        Assert.Same(offered.RootCaCrl, chosen.RootCaCrl); // March 2025 beats March 2024
        Assert.Same(offered.TcbInfo, chosen.TcbInfo); // the same documents: "at least as new"
        Assert.Same(offered.QeIdentity, chosen.QeIdentity);
    }

    [VectorFact]
    public async Task A_newer_tcb_info_for_another_platform_does_not_replace_the_own()
    {
        var own = await Load("tdx-spr-dcaprs-2025");
        var other = Vector("tdx/automata_tdx_tcbinfo_90c06f000000_20250605.json"); // June 2025, number 17, another FMSPC
        var offered = own with { TcbInfo = IntelCollateralDocument.Parse(other, CollateralDocumentKind.TcbInfo) };

        Assert.Same(own.TcbInfo, OfferedCollateralSource.Newest(Spr, own, offered).TcbInfo);
    }

    [VectorFact]
    public async Task When_the_own_source_has_nothing_for_the_platform_the_offered_collateral_is_used()
    {
        var offered = await Load("tdx-spr-dcaprs-2024");
        var source = new OfferedCollateralSource(new Nothing(), offered);

        Assert.Same(offered, await source.GetDcapCollateralAsync(Spr));
    }

    [VectorTheory]
    [MemberData(nameof(DcapEndToEndCases.Names), MemberType = typeof(DcapEndToEndCases))]
    public async Task A_minimum_tcb_evaluation_data_number_above_the_collaterals_refuses_it_naming_the_check(string name)
    {
        var row = DcapEndToEndCases.Get(name);
        var verification = await DcapVerifier.VerifyAsync(
            TestVectors.Read(row.QuoteDir, row.QuoteFile), new DcapVerifyOptions { Time = new FakeTimeProvider(row.At), CollateralSource = row.OpenSource() });
        var collateral = verification.Collateral!;
        int?[] numbers = [collateral.TcbInfo?.TcbEvaluationDataNumber, collateral.QeIdentity?.TcbEvaluationDataNumber];
        var number = verification.Tcb!.TcbEvaluationDataNumber;
        Assert.Equal(numbers.Where(n => n is not null).Min(), number);
        Assert.NotNull(number);

        var above = Validate(verification, number.Value + 1);
        var failure = Assert.Single(above.Failures, f => f.Check == DcapPolicyChecks.TcbEvaluationDataNumber);
        Assert.Equal(
            $"the collateral's tcbEvaluationDataNumber {number} is below the policy minimum {number + 1}: it predates a TCB recovery the policy requires",
            failure.Reason);
        Assert.DoesNotContain(Validate(verification, number.Value).Failures, f => f.Check == DcapPolicyChecks.TcbEvaluationDataNumber);
        Assert.DoesNotContain(Validate(verification, null).Failures, f => f.Check == DcapPolicyChecks.TcbEvaluationDataNumber);
    }

    [Fact]
    public void A_minimum_with_no_verified_collateral_is_not_met()
    {
        var log = DcapTcbPolicyProbe(new TcbEvaluation { Status = TcbStatus.UpToDate }, 1);

        Assert.Contains(log.Failures, f => f.Check == DcapPolicyChecks.TcbEvaluationDataNumber && f.Reason.Contains("unknown", StringComparison.Ordinal));
    }

    private static CheckLog Validate(DcapVerification verification, int? minimum)
    {
        var accepting = TcbStatus.PlatformLevelStatuses;
        return verification.Claims switch
        {
            TdxClaims tdx => TdxValidator.Validate(tdx, verification.Tcb, new TdxPolicy { AcceptedTcbStatuses = accepting, MinimumTcbEvaluationDataNumber = minimum }),
            SgxClaims sgx => SgxValidator.Validate(sgx, verification.Tcb, new SgxPolicy { AcceptedTcbStatuses = accepting, AllowDebug = true, MinimumTcbEvaluationDataNumber = minimum }),
            var other => throw new InvalidOperationException($"unexpected claims {other.GetType().Name}"),
        };
    }

    private static CheckLog DcapTcbPolicyProbe(TcbEvaluation tcb, int minimum)
    {
        var log = new CheckLog();
        DcapTcbPolicy.Check(tcb, [TcbStatus.UpToDate], null, minimum, log);
        return log;
    }

    private static async Task<DcapCollateral> Load(string endToEndCase) =>
        (await DcapEndToEndCases.Get(endToEndCase).OpenSource().GetDcapCollateralAsync(Spr))!;

    private static byte[] Vector(string relative) => TestVectors.Read(relative.Split('/'));

    private sealed class Nothing : ICollateralSource
    {
        public ValueTask<DcapCollateral?> GetDcapCollateralAsync(DcapCollateralRequest request, CancellationToken cancellationToken = default) =>
            ValueTask.FromResult<DcapCollateral?>(null);
    }
}
