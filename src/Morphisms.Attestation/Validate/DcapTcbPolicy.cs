using Morphisms.Attestation.Collateral;
using Morphisms.Attestation.Verify.Dcap;

namespace Morphisms.Attestation.Validate;

/// <summary>The TCB appraisal SGX and TDX policies share: which Intel TCB statuses and advisories are acceptable.</summary>
internal static class DcapTcbPolicy
{
    public static readonly IReadOnlyCollection<string> DefaultStatuses = [TcbStatus.UpToDate];

    public static void Check(TcbEvaluation? tcb, IReadOnlyCollection<string> acceptedStatuses, IReadOnlyCollection<string>? acceptedAdvisories, int? minimumEvaluationDataNumber, CheckLog log)
    {
        // Checked apart from the status: collateral from before a TCB recovery can rate the platform UpToDate.
        if (minimumEvaluationDataNumber is { } minimum)
        {
            if (tcb?.TcbEvaluationDataNumber is not { } number)
            {
                log.Fail(DcapPolicyChecks.TcbEvaluationDataNumber,
                    $"the collateral's tcbEvaluationDataNumber is unknown (no verified TCB info or QE identity), so the policy minimum {minimum} cannot be met");
            }
            else if (number < minimum)
            {
                log.Fail(DcapPolicyChecks.TcbEvaluationDataNumber,
                    $"the collateral's tcbEvaluationDataNumber {number} is below the policy minimum {minimum}: it predates a TCB recovery the policy requires");
            }
        }

        if (tcb?.Status is not { } status)
        {
            log.Fail(DcapPolicyChecks.TcbStatus, "the TCB status is unknown (no collateral, or no matching TCB level), so no status can be accepted");
            return;
        }

        if (!acceptedStatuses.Contains(status, StringComparer.OrdinalIgnoreCase))
        {
            log.Fail(DcapPolicyChecks.TcbStatus, $"TCB status {status} is not accepted (accepted: {string.Join(", ", acceptedStatuses)})"
                + Advisories(tcb.AdvisoryIds));
            return;
        }

        if (acceptedAdvisories is not null)
        {
            var unaccepted = tcb.AdvisoryIds.Where(a => !acceptedAdvisories.Contains(a, StringComparer.OrdinalIgnoreCase)).ToList();
            if (unaccepted.Count > 0)
            {
                log.Fail(DcapPolicyChecks.TcbAdvisory, $"advisories not accepted by the policy apply: {string.Join(", ", unaccepted)}");
                return;
            }
        }

        if (!string.Equals(status, TcbStatus.UpToDate, StringComparison.Ordinal))
        {
            // Accepted, but a relying party should know the platform is not fully patched.
            log.Warn($"{DcapPolicyChecks.TcbStatus}: {status} accepted by policy{Advisories(tcb.AdvisoryIds)}");
        }
    }

    public static bool EqualsPadded(ReadOnlySpan<byte> actual, byte[] expected) =>
        expected.Length <= actual.Length
        && actual[..expected.Length].SequenceEqual(expected)
        && !actual[expected.Length..].ContainsAnyExcept((byte)0);

    private static string Advisories(IReadOnlyList<string> ids) => ids.Count == 0 ? string.Empty : $" [{string.Join(", ", ids)}]";
}
