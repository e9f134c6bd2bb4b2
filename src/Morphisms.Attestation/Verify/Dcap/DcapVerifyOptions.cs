using Morphisms.Attestation.Collateral;
using Morphisms.Attestation.Trust;

namespace Morphisms.Attestation.Verify.Dcap;

/// <summary>How to verify a DCAP quote: which roots to trust, what time it is, and where collateral comes from.</summary>
public sealed record DcapVerifyOptions
{
    /// <summary>The roots to trust; simulated roots only when added explicitly.</summary>
    public TrustAnchors Anchors { get; init; } = TrustAnchors.Vendor;

    /// <summary>The clock giving the evaluation time (certificate validity, collateral freshness, CRLs).</summary>
    public TimeProvider Time { get; init; } = TimeProvider.System;

    /// <summary>Collateral to use as is. Takes precedence over <see cref="CollateralSource"/>.</summary>
    public DcapCollateral? Collateral { get; init; }

    /// <summary>Where to fetch collateral for the quote's FMSPC and PCK CA when <see cref="Collateral"/> is null.</summary>
    public ICollateralSource? CollateralSource { get; init; }
}
