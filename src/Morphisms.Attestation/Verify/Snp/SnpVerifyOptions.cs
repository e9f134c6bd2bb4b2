using Morphisms.Attestation.Trust;

namespace Morphisms.Attestation.Verify.Snp;

/// <summary>How <see cref="SnpVerifier"/> decides that a report is authentic.</summary>
public sealed record SnpVerifyOptions
{
    /// <summary>Options with every default: vendor roots, the system clock, CRL checked only when supplied.</summary>
    public static SnpVerifyOptions Default { get; } = new();

    /// <summary>The roots a chain must end at. Simulated roots count only when added here explicitly.</summary>
    public TrustAnchors Anchors { get; init; } = TrustAnchors.Vendor;

    /// <summary>The clock that gives the evaluation time for certificate and CRL validity.</summary>
    public TimeProvider Time { get; init; } = TimeProvider.System;

    /// <summary>When true, a CRL must be supplied (here or with the endorsements); without one verification fails.</summary>
    public bool CheckCrl { get; init; }

    /// <summary>An AMD CRL (DER or PEM) to check the chain against, in addition to one supplied with the endorsements.</summary>
    public byte[]? Crl { get; init; }

    /// <summary>
    /// The product line the report must come from (Milan, Genoa, Turin). Null lets the verifier learn it
    /// from the report's CPUID (version 3+) or the certificate.
    /// </summary>
    public string? Product { get; init; }
}
