using Morphisms.Attestation.Abi.Dcap;
using Morphisms.Attestation.Verify.Dcap;

namespace Morphisms.Attestation.Validate;

/// <summary>
/// Appraises TDX claims and their TCB evaluation against a <see cref="TdxPolicy"/>. It assumes the
/// quote was already verified authentic; on its own it proves nothing about where the claims came from.
/// </summary>
public static class TdxValidator
{
    /// <summary>Runs every check the policy asks for and returns the failures and warnings.</summary>
    /// <param name="claims">The TD's claims.</param>
    /// <param name="tcb">The TCB evaluation from verification; null when none could be made (then no TCB status is acceptable).</param>
    /// <param name="policy">The policy; null means <see cref="TdxPolicy.Default"/>.</param>
    public static CheckLog Validate(TdxClaims claims, TcbEvaluation? tcb, TdxPolicy? policy = null)
    {
        ArgumentNullException.ThrowIfNull(claims);
        policy ??= TdxPolicy.Default;
        var log = new CheckLog();

        log.Require(policy.AllowDebug || !claims.DebugAllowed, DcapPolicyChecks.TdxDebug,
            $"the TD runs in debug mode (TD_ATTRIBUTES {Hex.Of(claims.TdAttributes)}): its state is readable by the host");

        if (policy.MrTds is { } mrTds)
        {
            log.Require(mrTds.Any(m => claims.MrTd.Span.SequenceEqual(m)), DcapPolicyChecks.MrTd,
                $"MRTD {Hex.Of(claims.MrTd)} is not an expected value");
        }

        var rtmrs = claims.Report.Rtmrs;
        var expectedRtmrs = policy.Rtmrs;
        for (var i = 0; i < rtmrs.Count; i++)
        {
            if (expectedRtmrs[i] is { } expected)
            {
                log.Require(rtmrs[i].Span.SequenceEqual(expected), DcapPolicyChecks.Rtmr(i),
                    $"RTMR{i} {Hex.Of(rtmrs[i])} is not the expected {Hex.Of(expected)}");
            }
        }

        Exact(claims.MrConfigId, policy.MrConfigId, DcapPolicyChecks.MrConfigId, "MRCONFIGID", log);
        Exact(claims.MrOwner, policy.MrOwner, DcapPolicyChecks.MrOwner, "MROWNER", log);
        Exact(claims.MrOwnerConfig, policy.MrOwnerConfig, DcapPolicyChecks.MrOwnerConfig, "MROWNERCONFIG", log);

        if (policy.ReportData is { } reportData)
        {
            log.Require(DcapTcbPolicy.EqualsPadded(claims.ReportData.Span, reportData), DcapPolicyChecks.TdxReportData,
                $"REPORTDATA {Hex.Of(claims.ReportData)} is not the expected {Hex.Of(reportData)}");
        }

        DcapTcbPolicy.Check(tcb, policy.AcceptedTcbStatuses, policy.AcceptedAdvisoryIds, policy.MinimumTcbEvaluationDataNumber, log);
        return log;
    }

    private static void Exact(ReadOnlyMemory<byte> actual, byte[]? expected, string check, string name, CheckLog log)
    {
        if (expected is not null)
        {
            log.Require(actual.Span.SequenceEqual(expected), check, $"{name} {Hex.Of(actual)} is not the expected {Hex.Of(expected)}");
        }
    }
}
