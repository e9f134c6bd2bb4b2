using Morphisms.Attestation;

namespace Morphisms.Client.Trust;

/// <summary>The result of verifying a KMS: the record to pin when it is trustworthy, and why not otherwise.</summary>
/// <param name="Record">What to pin; null when the KMS was refused.</param>
/// <param name="Attestation">The verification of the KMS's evidence, when evidence was obtained.</param>
/// <param name="Failures">Every reason for refusal (empty when trusted).</param>
public sealed record KmsTrustOutcome(KmsTrustRecord? Record, AttestationResult? Attestation, IReadOnlyList<string> Failures)
{
    /// <summary>
    /// What the user must be told about a trusted KMS although it passed, e.g. that the pin which accepted it binds only
    /// a Kata guest image, not the KMS (<see cref="KmsTrustOptions.WorkloadWarning"/>). Empty when refused or when
    /// there is nothing to say.
    /// </summary>
    public IReadOnlyList<string> Warnings { get; init; } = [];

    /// <summary>True when the KMS may be pinned.</summary>
    public bool Trusted => Record is not null && Failures.Count == 0;
}
