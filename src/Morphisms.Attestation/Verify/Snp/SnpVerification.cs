using Morphisms.Attestation.Abi.Snp;
using Morphisms.Attestation.Trust;

namespace Morphisms.Attestation.Verify.Snp;

/// <summary>The outcome of checking an SEV-SNP report's authenticity (not its policy).</summary>
/// <param name="Claims">The report's claims; <see cref="EvidenceClaims.Simulated"/> is set when the chain ends at a simulated root.</param>
/// <param name="Log">Every authenticity check that failed, by name (see <see cref="SnpChecks"/>).</param>
/// <param name="Roots">The AMD roots the chain was checked against, or null when none applied.</param>
public sealed record SnpVerification(SnpClaims Claims, CheckLog Log, AmdProductRoots? Roots)
{
    /// <summary>True when every authenticity check passed.</summary>
    public bool Passed => Log.Passed;

    /// <summary>True when the chain ends at a simulated root.</summary>
    public bool Simulated => Claims.Simulated;
}
