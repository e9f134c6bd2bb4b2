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
        CheckAttributes(claims, policy, log);

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

    /// <summary>
    /// TD_ATTRIBUTES beyond DEBUG. Only what weakens the TD is refused; other bits (SEPT_VE_DISABLE, PKS, KL, LASS, PERFMON…)
    /// are configuration: the measured guest decides whether it runs with them (a Linux guest refuses to boot without
    /// SEPT_VE_DISABLE unless it can turn #VE off itself, when the attribute no longer says how it runs).
    /// </summary>
    private static void CheckAttributes(TdxClaims claims, TdxPolicy policy, CheckLog log)
    {
        var attributes = claims.Report.Attributes;

        // The ABI's own rule for the group: any bit set makes the TD untrusted. DEBUG has its named opt-out above; the
        // rest (host profiling: HGS_PLUS_PROF 4, PERF_PROF 5, PMT_PROF 6; reserved bits) have none.
        var underDebug = attributes & TdReportBody.UnderDebugMask & ~(ulong)TdReportBody.DebugFlag;
        log.Require(underDebug == 0, DcapPolicyChecks.TdxUnderDebug,
            $"TD_ATTRIBUTES {Hex.Of(claims.TdAttributes)} sets TUD bits 0x{underDebug:x2} besides DEBUG (such as the host's "
            + "profiling of the TD): the TDX module deems a TD with any TUD bit untrusted");

        if (claims.Report.Migratable)
        {
            if (policy.AllowMigratable)
            {
                log.Warn($"MIGRATABLE accepted by policy (TD_ATTRIBUTES {Hex.Of(claims.TdAttributes)}): a migration TD the host chooses may export this TD's state");
            }
            else
            {
                log.Fail(DcapPolicyChecks.TdxMigratable,
                    $"the TD is migratable (TD_ATTRIBUTES {Hex.Of(claims.TdAttributes)}, bit 29): a migration TD the host chooses may export its state");
            }
        }
    }

    private static void Exact(ReadOnlyMemory<byte> actual, byte[]? expected, string check, string name, CheckLog log)
    {
        if (expected is not null)
        {
            log.Require(actual.Span.SequenceEqual(expected), check, $"{name} {Hex.Of(actual)} is not the expected {Hex.Of(expected)}");
        }
    }
}
