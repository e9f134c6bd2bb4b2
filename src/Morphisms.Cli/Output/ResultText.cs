using System.Text;
using Morphisms.Attestation;

namespace Morphisms.Cli.Output;

/// <summary>The human-readable form of a verification result: the verdict first, then why, then the fields.</summary>
public static class ResultText
{
    /// <summary>Formats a result.</summary>
    public static string Format(AttestationResult result)
    {
        var text = new StringBuilder();
        var verdict = result.Accepted ? "ACCEPTED" : "REJECTED";
        text.Append($"{verdict}: {result.Tee.ToWireName()} evidence is {result.Status.ToWireName()}");
        text.AppendLine(result.Simulated ? " (SIMULATED TEE: proves nothing about hardware)" : string.Empty);
        if (result.TcbStatus is { } tcb)
        {
            var advisories = result.AdvisoryIds.Count > 0 ? $" [{string.Join(", ", result.AdvisoryIds)}]" : string.Empty;
            text.AppendLine($"TCB status: {tcb}{advisories}");
        }

        foreach (var failure in result.Failures)
        {
            text.AppendLine($"  failed  {failure.Check}: {failure.Reason}");
        }

        foreach (var warning in result.Warnings)
        {
            text.AppendLine($"  warning {warning}");
        }

        text.AppendLine();
        text.Append(ClaimFields.ToText(result.Claims));
        return text.ToString();
    }
}
