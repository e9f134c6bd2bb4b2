using Morphisms.Attestation.Abi.Snp;
using Morphisms.Attestation.Validate;
using Morphisms.Attestation.Verify.Snp;

namespace Morphisms.Attestation;

/// <summary>
/// One call that parses, verifies and appraises an SEV-SNP report, for callers that want an
/// <see cref="AttestationResult"/> rather than the separate steps.
/// </summary>
public static class SnpAttestation
{
    /// <summary>
    /// Verifies <paramref name="report"/> with <paramref name="endorsements"/> under
    /// <paramref name="options"/>, then appraises it against <paramref name="policy"/> (the default
    /// policy when null). Both steps always run so the result lists every failure.
    /// </summary>
    /// <exception cref="EvidenceFormatException">The report is not a well-formed SEV-SNP report.</exception>
    public static AttestationResult Verify(byte[] report, SnpEndorsements endorsements, SnpVerifyOptions? options = null, SnpPolicy? policy = null)
    {
        ArgumentNullException.ThrowIfNull(report);
        var verification = new SnpVerifier(options).Verify(SnpReport.Parse(report), endorsements);
        var log = new CheckLog();
        log.Append(verification.Log);
        log.Append(SnpValidator.Validate(verification.Claims, policy));
        return AttestationResult.From(verification.Claims, log);
    }
}
