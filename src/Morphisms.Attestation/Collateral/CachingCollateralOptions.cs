namespace Morphisms.Attestation.Collateral;

/// <summary>How long <see cref="CachingCollateralSource"/> keeps answers.</summary>
public sealed record CachingCollateralOptions
{
    /// <summary>
    /// Upper bound on how long collateral is kept even when its nextUpdate is further away, so a
    /// revocation Intel publishes early (a new CRL, an out-of-cycle TCB recovery) is seen within this time.
    /// </summary>
    public TimeSpan MaxAge { get; init; } = TimeSpan.FromHours(1);

    /// <summary>How long a "no collateral" answer is kept, so an unknown FMSPC does not hammer the inner source.</summary>
    public TimeSpan MissingAge { get; init; } = TimeSpan.FromMinutes(5);

    /// <summary>
    /// Most (TEE, FMSPC, PCK CA) entries kept. When a new entry would exceed it, expired entries go first,
    /// then the oldest stored, so memory stays bounded whatever platforms are asked about. Intel's platforms
    /// number in the hundreds, so the default only bites under abuse.
    /// </summary>
    public int MaxEntries { get; init; } = 1024;
}
