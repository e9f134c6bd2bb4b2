using Morphisms.Attestation.Collateral;
using Morphisms.Attestation.Trust;

namespace Morphisms.Attestation;

/// <summary>
/// Everything needed to verify and appraise one piece of evidence of any TEE type with one call
/// (<see cref="EvidenceVerifier.VerifyAsync"/>). TEE-specific policies can be given in full through
/// the per-TEE properties; the common knobs (<see cref="ExpectedMeasurement"/>, <see cref="AllowDebug"/>,
/// <see cref="AcceptedTcbStatuses"/>) are applied on top.
/// </summary>
public sealed record EvidenceVerificationRequest
{
    /// <summary>The TEE type the evidence claims to come from.</summary>
    public required TeeType Tee { get; init; }

    /// <summary>The raw report (SNP) or quote (SGX, TDX).</summary>
    public required byte[] Evidence { get; init; }

    /// <summary>SNP only: the VCEK or VLEK certificate (DER or PEM, optionally a PEM chain with ASK/ASVK and ARK).</summary>
    public byte[]? SnpCertificate { get; init; }

    /// <summary>SNP only: an AMD CRL to check the chain against.</summary>
    public byte[]? SnpCrl { get; init; }

    /// <summary>SGX/TDX: the collateral source (an offline store or a cached online source).</summary>
    public ICollateralSource? Collateral { get; init; }

    /// <summary>The evaluation time; null means now (from <see cref="Time"/>).</summary>
    public DateTimeOffset? EvaluationTime { get; init; }

    /// <summary>The clock used when <see cref="EvaluationTime"/> is null.</summary>
    public TimeProvider Time { get; init; } = TimeProvider.System;

    /// <summary>The roots to trust. Simulated roots must be added explicitly.</summary>
    public TrustAnchors Anchors { get; init; } = TrustAnchors.Vendor;

    /// <summary>When set, the measurement (SNP MEASUREMENT, SGX MRENCLAVE, TDX MRTD) must equal it.</summary>
    public byte[]? ExpectedMeasurement { get; init; }

    /// <summary>When set, REPORT_DATA must equal it.</summary>
    public byte[]? ExpectedReportData { get; init; }

    /// <summary>
    /// SNP only: the least privileged VMPL the report may come from, or null for any. A caller that trusts REPORT_DATA
    /// should say 0: under a paravisor or SVSM a less privileged VMPL gets reports with the VMPL 0 MEASUREMENT.
    /// </summary>
    public uint? MaximumSnpVmpl { get; init; }

    /// <summary>Accept evidence from a TEE that allows debugging. Off by default: a debuggable TEE protects nothing.</summary>
    public bool AllowDebug { get; init; }

    /// <summary>SGX/TDX TCB statuses to accept; null means the library's secure default.</summary>
    public IReadOnlyCollection<string>? AcceptedTcbStatuses { get; init; }
}
