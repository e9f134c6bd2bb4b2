using Morphisms.Attestation;

namespace Morphisms.Client.Trust;

/// <summary>The result of verifying a KMS: the record to pin when it is trustworthy, and why not otherwise.</summary>
/// <param name="Record">What to pin; null when the KMS was refused.</param>
/// <param name="Attestation">The verification of the KMS's evidence, when evidence was obtained.</param>
/// <param name="Failures">Every reason for refusal (empty when trusted).</param>
public sealed record KmsTrustOutcome(KmsTrustRecord? Record, AttestationResult? Attestation, IReadOnlyList<string> Failures)
{
    /// <summary>True when the KMS may be pinned.</summary>
    public bool Trusted => Record is not null && Failures.Count == 0;
}
