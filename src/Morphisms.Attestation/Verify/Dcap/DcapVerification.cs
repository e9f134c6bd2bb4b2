using Morphisms.Attestation.Abi.Dcap;
using Morphisms.Attestation.Collateral;

namespace Morphisms.Attestation.Verify.Dcap;

/// <summary>
/// The outcome of verifying a DCAP quote (authenticity only; see the SGX/TDX validators for
/// appraisal): the claims, every failed check, and what the collateral and Intel's TCB algorithm said.
/// </summary>
public sealed record DcapVerification
{
    /// <summary>The parsed quote.</summary>
    public required DcapQuote Quote { get; init; }

    /// <summary>The claims (<see cref="SgxClaims"/> or <see cref="TdxClaims"/>), present even when verification failed.</summary>
    public required DcapClaims Claims { get; init; }

    /// <summary>Every failed check of verification.</summary>
    public required CheckLog Log { get; init; }

    /// <summary>The PCK chain as read and checked.</summary>
    public required PckChain PckChain { get; init; }

    /// <summary>The collateral items that verified; null when no collateral was available.</summary>
    public VerifiedCollateral? Collateral { get; init; }

    /// <summary>Intel's TCB evaluation; null when it could not be run (no collateral or no PCK extensions).</summary>
    public TcbEvaluation? Tcb { get; init; }

    /// <summary>True when every verification check passed.</summary>
    public bool Verified => Log.Passed;

    /// <summary>The result of verification alone, without appraisal.</summary>
    public AttestationResult ToResult() => AttestationResult.From(Claims, Log, Tcb?.Status, Tcb?.AdvisoryIds);
}
