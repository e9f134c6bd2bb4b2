using Morphisms.Attestation.Collateral;
using Morphisms.Attestation.Simulated;
using Morphisms.Attestation.Trust;
using Morphisms.Kms.Attest;
using Morphisms.Kms.SelfAttestation;

namespace Morphisms.Kms;

/// <summary>
/// How the KMS judges attestation evidence (<c>auth/attest</c>) and how it attests itself (<c>sys/attestation</c>).
/// The defaults trust the real vendor roots only.
/// </summary>
public sealed record KmsAttestationOptions
{
    /// <summary>
    /// The installation's simulated TEE, for machines without TEE hardware. When set (and no
    /// <see cref="EvidenceProvider"/> is given) the KMS attests itself with simulated SNP-format evidence from it.
    /// Its evidence is accepted at login only when <see cref="TrustSimulatedTee"/> is also set. The caller owns it.
    /// </summary>
    public SimulatedTeeAuthority? SimulatedTee { get; init; }

    /// <summary>
    /// Accept login evidence that chains to <see cref="SimulatedTee"/>'s roots (dev mode, or an explicit operator
    /// decision). Such evidence proves nothing about hardware; tokens and audit entries made from it say so.
    /// </summary>
    public bool TrustSimulatedTee { get; init; }

    /// <summary>The hardware vendor roots (AMD ARKs, Intel SGX root); the embedded ones by default.</summary>
    public TrustAnchors VendorAnchors { get; init; } = TrustAnchors.Vendor;

    /// <summary>
    /// The KMS's own SGX/TDX collateral (an offline store, or a cached Intel PCS / PCCS source). When set, collateral a
    /// login sends as endorsements is used only item by item where it is at least as new as the KMS's own for the same
    /// platform (<see cref="OfferedCollateralSource"/>), so an instance cannot pick collateral from before a TCB recovery
    /// or a revocation. When null, a login's collateral is used as sent, within its signed validity, and the server warns
    /// at start.
    /// </summary>
    public ICollateralSource? Collateral { get; init; }

    /// <summary>
    /// The operator's AMD CRLs (<c>--snp-crl</c>): an SNP login whose VCEK/VLEK chains to a product they cover is refused
    /// (check <c>snp.crl</c>) when its ASK/ASVK or key is revoked or a CRL is not current. When null, AMD revocation is
    /// not checked and the server warns at start.
    /// </summary>
    public SnpRevocationLists? SnpCrls { get; init; }

    /// <summary>
    /// Minimum <c>tcbEvaluationDataNumber</c> (Intel's TCB recovery number) of the collateral an SGX login's TCB status is
    /// computed from; null (the default) accepts any. Refused logins fail the <c>tcb.evaluation_data_number</c> check.
    /// </summary>
    public int? MinimumSgxTcbEvaluationDataNumber { get; init; }

    /// <summary>As <see cref="MinimumSgxTcbEvaluationDataNumber"/>, for TDX logins.</summary>
    public int? MinimumTdxTcbEvaluationDataNumber { get; init; }

    /// <summary>How long an attestation challenge nonce stays valid.</summary>
    public TimeSpan NonceTtl { get; init; } = TimeSpan.FromSeconds(60);

    /// <summary>
    /// The most spent, unexpired challenge nonces remembered (to refuse their replay); beyond it logins get 429 until
    /// some expire. Issuing challenges is not limited: it keeps no state. Keeping the set full takes this many logins
    /// with genuine nonces per <see cref="NonceTtl"/>; each entry costs about 90-130 bytes.
    /// </summary>
    public int MaxSpentNonces { get; init; } = 200_000;

    /// <summary>
    /// Where the KMS's own evidence comes from (a hardware provider in a real TEE). Null means: simulated evidence
    /// from <see cref="SimulatedTee"/> when one is set, otherwise no self-attestation.
    /// </summary>
    public IKmsEvidenceProvider? EvidenceProvider { get; init; }

    /// <summary>
    /// The 48-byte measurement the KMS reports in simulated evidence; null measures the KMS's own assemblies
    /// (<see cref="KmsMeasurement.Simulated"/>).
    /// </summary>
    public byte[]? SimulatedMeasurement { get; init; }
}
