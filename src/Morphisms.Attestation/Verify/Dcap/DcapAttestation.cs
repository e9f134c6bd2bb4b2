using Morphisms.Attestation.Abi.Dcap;
using Morphisms.Attestation.Validate;

namespace Morphisms.Attestation.Verify.Dcap;

/// <summary>
/// One call for SGX and TDX quotes: verify authenticity with <see cref="DcapVerifier"/>, then appraise
/// the claims with the SGX or TDX policy. The result carries the claims, every failure, the TCB status
/// and the advisory IDs.
/// </summary>
public static class DcapAttestation
{
    /// <summary>Check name: the quote is for another TEE than the caller expects.</summary>
    public const string TeeTypeCheck = "dcap.tee_type";

    /// <summary>
    /// Verifies and appraises a quote of either TEE: <paramref name="sgxPolicy"/> applies to an SGX
    /// quote, <paramref name="tdxPolicy"/> to a TDX quote, and a null policy means the default one.
    /// </summary>
    /// <exception cref="EvidenceFormatException">The quote is malformed.</exception>
    public static async ValueTask<AttestationResult> VerifyAsync(byte[] quote, DcapVerifyOptions? options = null,
        SgxPolicy? sgxPolicy = null, TdxPolicy? tdxPolicy = null, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(quote);
        var verification = await DcapVerifier.VerifyAsync(quote, options, cancellationToken).ConfigureAwait(false);
        return Appraise(verification, sgxPolicy, tdxPolicy);
    }

    /// <summary>Verifies and appraises a quote that must be an SGX quote (a TDX quote fails <c>dcap.tee_type</c>).</summary>
    /// <exception cref="EvidenceFormatException">The quote is malformed.</exception>
    public static async ValueTask<AttestationResult> VerifySgxAsync(byte[] quote, SgxPolicy? policy = null,
        DcapVerifyOptions? options = null, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(quote);
        var verification = await DcapVerifier.VerifyAsync(quote, options, cancellationToken).ConfigureAwait(false);
        return Appraise(verification, policy, null, TeeType.Sgx);
    }

    /// <summary>Verifies and appraises a quote that must be a TDX quote (an SGX quote fails <c>dcap.tee_type</c>).</summary>
    /// <exception cref="EvidenceFormatException">The quote is malformed.</exception>
    public static async ValueTask<AttestationResult> VerifyTdxAsync(byte[] quote, TdxPolicy? policy = null,
        DcapVerifyOptions? options = null, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(quote);
        var verification = await DcapVerifier.VerifyAsync(quote, options, cancellationToken).ConfigureAwait(false);
        return Appraise(verification, null, policy, TeeType.Tdx);
    }

    /// <summary>Appraises an existing verification with the policy for its TEE and builds the result.</summary>
    /// <param name="verification">The outcome of <see cref="DcapVerifier"/>.</param>
    /// <param name="sgxPolicy">Policy for SGX quotes; null means <see cref="SgxPolicy.Default"/>.</param>
    /// <param name="tdxPolicy">Policy for TDX quotes; null means <see cref="TdxPolicy.Default"/>.</param>
    /// <param name="expectedTee">When set, a quote of the other TEE fails <see cref="TeeTypeCheck"/>.</param>
    public static AttestationResult Appraise(DcapVerification verification, SgxPolicy? sgxPolicy = null, TdxPolicy? tdxPolicy = null, TeeType? expectedTee = null)
    {
        ArgumentNullException.ThrowIfNull(verification);
        var log = new CheckLog();
        log.Append(verification.Log);
        if (expectedTee is { } expected)
        {
            log.Require(verification.Claims.Tee == expected, TeeTypeCheck,
                $"the quote is a {verification.Claims.Tee.ToWireName()} quote, not {expected.ToWireName()}");
        }

        log.Append(verification.Claims switch
        {
            SgxClaims sgx => SgxValidator.Validate(sgx, verification.Tcb, sgxPolicy),
            TdxClaims tdx => TdxValidator.Validate(tdx, verification.Tcb, tdxPolicy),
            _ => throw new InvalidOperationException("DCAP claims are SGX or TDX"),
        });
        var tcb = verification.Tcb;
        return AttestationResult.From(verification.Claims, log, tcb?.Status, tcb?.AdvisoryIds);
    }
}
