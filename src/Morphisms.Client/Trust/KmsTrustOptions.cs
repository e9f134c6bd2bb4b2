using Morphisms.Attestation.Collateral;
using Morphisms.Attestation.Trust;

namespace Morphisms.Client.Trust;

/// <summary>How a client decides whether to trust a KMS.</summary>
public sealed record KmsTrustOptions
{
    /// <summary>Roots to verify the KMS's evidence with; add a simulated root only for a dev installation.</summary>
    public TrustAnchors Anchors { get; init; } = TrustAnchors.Vendor;

    /// <summary>When set, the KMS's measurement must equal it.</summary>
    public byte[]? ExpectedMeasurement { get; init; }

    /// <summary>Collateral for an SGX/TDX KMS (an SNP KMS sends its VCEK).</summary>
    public ICollateralSource? Collateral { get; init; }

    /// <summary>The clock for certificate and collateral validity.</summary>
    public TimeProvider Time { get; init; } = TimeProvider.System;

    /// <summary>How long to wait for the KMS.</summary>
    public TimeSpan Timeout { get; init; } = TimeSpan.FromSeconds(30);
}
