namespace Morphisms.Attestation;

/// <summary>
/// The outcome of verifying (authenticity) and appraising (policy) one piece of evidence: typed
/// claims, an EAR-style status, the TCB status where the TEE has one, and every failed check with its reason.
/// </summary>
public sealed record AttestationResult
{
    /// <summary>The TEE type of the evidence.</summary>
    public required TeeType Tee { get; init; }

    /// <summary>The parsed claims. Present even when verification failed, so a user can see what the evidence says.</summary>
    public required EvidenceClaims Claims { get; init; }

    /// <summary>The overall verdict.</summary>
    public required AttestationStatus Status { get; init; }

    /// <summary>Every failed check (empty when the status is not contraindicated).</summary>
    public required IReadOnlyList<CheckFailure> Failures { get; init; }

    /// <summary>Non-fatal observations, for example an accepted but not up-to-date TCB.</summary>
    public IReadOnlyList<string> Warnings { get; init; } = [];

    /// <summary>Intel TCB status (SGX/TDX): UpToDate, SWHardeningNeeded, …; null for SNP or when it could not be computed.</summary>
    public string? TcbStatus { get; init; }

    /// <summary>Intel security advisory IDs that apply to the matched TCB level.</summary>
    public IReadOnlyList<string> AdvisoryIds { get; init; } = [];

    /// <summary>True when the evidence came from the simulated TEE.</summary>
    public bool Simulated => Claims.Simulated;

    /// <summary>True when nothing failed.</summary>
    public bool Accepted => Status != AttestationStatus.Contraindicated;

    /// <summary>
    /// Builds a result from the checks run: contraindicated if any failed, warning if any warning
    /// was recorded or the evidence is simulated, affirming otherwise.
    /// </summary>
    public static AttestationResult From(EvidenceClaims claims, CheckLog log, string? tcbStatus = null, IReadOnlyList<string>? advisoryIds = null)
    {
        var warnings = log.Warnings.ToList();
        if (claims.Simulated)
        {
            warnings.Insert(0, "simulated evidence: it proves nothing about TEE hardware");
        }

        var status = !log.Passed ? AttestationStatus.Contraindicated
            : warnings.Count > 0 ? AttestationStatus.Warning
            : AttestationStatus.Affirming;
        return new AttestationResult
        {
            Tee = claims.Tee,
            Claims = claims,
            Status = status,
            Failures = log.Failures.ToList(),
            Warnings = warnings,
            TcbStatus = tcbStatus,
            AdvisoryIds = advisoryIds ?? [],
        };
    }
}
