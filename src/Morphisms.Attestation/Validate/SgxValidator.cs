using Morphisms.Attestation.Abi.Dcap;
using Morphisms.Attestation.Verify.Dcap;

namespace Morphisms.Attestation.Validate;

/// <summary>
/// Appraises SGX claims and their TCB evaluation against an <see cref="SgxPolicy"/>. It assumes the
/// quote was already verified authentic; on its own it proves nothing about where the claims came from.
/// </summary>
public static class SgxValidator
{
    /// <summary>Runs every check the policy asks for and returns the failures and warnings.</summary>
    /// <param name="claims">The enclave's claims.</param>
    /// <param name="tcb">The TCB evaluation from verification; null when none could be made (then no TCB status is acceptable).</param>
    /// <param name="policy">The policy; null means <see cref="SgxPolicy.Default"/>.</param>
    public static CheckLog Validate(SgxClaims claims, TcbEvaluation? tcb, SgxPolicy? policy = null)
    {
        ArgumentNullException.ThrowIfNull(claims);
        policy ??= SgxPolicy.Default;
        var log = new CheckLog();

        log.Require(policy.AllowDebug || !claims.DebugAllowed, DcapPolicyChecks.SgxDebug,
            $"the enclave runs in debug mode (ATTRIBUTES {Hex.Of(claims.Attributes)}): its memory is readable by the host");

        if (policy.MrEnclaves is { } mrEnclaves)
        {
            log.Require(mrEnclaves.Any(m => claims.MrEnclave.Span.SequenceEqual(m)), DcapPolicyChecks.MrEnclave,
                $"MRENCLAVE {Hex.Of(claims.MrEnclave)} is not an expected value");
        }

        if (policy.MrSigner is { } mrSigner)
        {
            log.Require(claims.MrSigner.Span.SequenceEqual(mrSigner), DcapPolicyChecks.MrSigner,
                $"MRSIGNER {Hex.Of(claims.MrSigner)} is not the expected {Hex.Of(mrSigner)}");
        }

        if (policy.IsvProdId is { } prodId)
        {
            log.Require(claims.IsvProdId == prodId, DcapPolicyChecks.IsvProdId,
                $"ISVPRODID {claims.IsvProdId} is not the expected {prodId}");
        }

        if (policy.MinimumIsvSvn is { } minimumSvn)
        {
            log.Require(claims.IsvSvn >= minimumSvn, DcapPolicyChecks.IsvSvn,
                $"ISVSVN {claims.IsvSvn} is below the minimum {minimumSvn}");
        }

        if (policy.ReportData is { } reportData)
        {
            log.Require(DcapTcbPolicy.EqualsPadded(claims.ReportData.Span, reportData), DcapPolicyChecks.SgxReportData,
                $"REPORTDATA {Hex.Of(claims.ReportData)} is not the expected {Hex.Of(reportData)}");
        }

        DcapTcbPolicy.Check(tcb, policy.AcceptedTcbStatuses, policy.AcceptedAdvisoryIds, policy.MinimumTcbEvaluationDataNumber, log);
        return log;
    }
}
