namespace Morphisms.Attestation;

/// <summary>
/// The overall verdict on a piece of evidence, in the tiers of the IETF EAR draft
/// (<c>ear.status</c>): it tells a relying party whether to trust, trust with care, or refuse.
/// </summary>
public enum AttestationStatus
{
    /// <summary>Authentic and every policy check passed with an up-to-date TCB.</summary>
    Affirming,

    /// <summary>Authentic and accepted by policy, but something deserves attention (for example an accepted SWHardeningNeeded TCB).</summary>
    Warning,

    /// <summary>At least one check failed: do not release secrets.</summary>
    Contraindicated,
}

/// <summary>Wire names for <see cref="AttestationStatus"/>.</summary>
public static class AttestationStatuses
{
    /// <summary>The lowercase EAR name: <c>affirming</c>, <c>warning</c> or <c>contraindicated</c>.</summary>
    public static string ToWireName(this AttestationStatus status) => status switch
    {
        AttestationStatus.Affirming => "affirming",
        AttestationStatus.Warning => "warning",
        _ => "contraindicated",
    };
}
