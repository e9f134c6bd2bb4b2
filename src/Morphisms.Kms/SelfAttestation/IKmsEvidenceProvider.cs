using Morphisms.Attestation;

namespace Morphisms.Kms.SelfAttestation;

/// <summary>
/// Produces the KMS's own TEE evidence over 64 bytes of report data: the simulated TEE on machines without
/// hardware; SEV-SNP through configfs-tsm or <c>/dev/sev-guest</c>, or Gramine's <c>/dev/attestation</c>, in a real TEE.
/// </summary>
public interface IKmsEvidenceProvider
{
    /// <summary>Evidence whose REPORT_DATA is exactly <paramref name="reportData"/>.</summary>
    Task<KmsEvidence> GetEvidenceAsync(byte[] reportData, CancellationToken cancellationToken);
}

/// <summary>The KMS's evidence and what a verifier needs with it.</summary>
/// <param name="Tee">The evidence format.</param>
/// <param name="Evidence">The raw report (SNP) or quote (SGX/TDX).</param>
/// <param name="Endorsement">SNP: the VCEK certificate (DER); SGX/TDX: null (collateral comes from Intel).</param>
/// <param name="Simulated">True for evidence of the simulated TEE, which proves nothing about hardware.</param>
public sealed record KmsEvidence(TeeType Tee, byte[] Evidence, byte[]? Endorsement, bool Simulated);
