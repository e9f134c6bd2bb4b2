using Morphisms.Attestation;
using Morphisms.Attestation.Abi.Dcap;
using Morphisms.Attestation.Abi.Snp;
using Morphisms.Attestation.Binding;
using Morphisms.Attestation.Collateral;
using Morphisms.Attestation.Simulated;
using Morphisms.Attestation.Trust;
using Morphisms.Attestation.Validate;
using Morphisms.Attestation.Verify.Dcap;
using Morphisms.Attestation.Verify.Snp;
using Morphisms.Kms.Functions;
using Morphisms.Kms.Http;

namespace Morphisms.Kms.Attest;

/// <summary>
/// Judges login evidence in three steps, recording every failure rather than the first: verify (authenticity:
/// signatures and chains to the trusted roots, collateral, TCB), appraise against the function's active reference
/// values (the simulated ones for simulated evidence, the hardware ones otherwise), and check the binding of the
/// nonce and the CSR's key into REPORT_DATA.
/// </summary>
internal sealed class LoginAppraiser
{
    /// <summary>Check name: no active revision registers the evidence's measurement.</summary>
    public const string ReferenceValuesCheck = "reference_values";

    /// <summary>
    /// Check name: the matching revision was stored before registrations had to bind the workload (SNP HOST_DATA, TDX
    /// RTMR1/RTMR2/MRCONFIGID), so its measurement admits any guest of the same image; see <see cref="WorkloadBinding"/>.
    /// </summary>
    public const string WorkloadBindingCheck = "workload_binding";

    /// <summary>Check name: REPORT_DATA is not the binding of this nonce and this CSR key.</summary>
    public const string BindingCheck = "binding";

    private readonly TrustAnchors _anchors;
    private readonly ICollateralSource? _collateral;
    private readonly SimulatedTeeAuthority? _trustedSimulated;
    private readonly TimeProvider _time;
    private readonly EvaluationMinimums _minimums;
    private readonly SnpRevocationLists? _snpCrls;

    public LoginAppraiser(KmsAttestationOptions options, TimeProvider time)
    {
        _time = time;
        _trustedSimulated = options.TrustSimulatedTee ? options.SimulatedTee : null;
        _anchors = _trustedSimulated?.TrustedWith(options.VendorAnchors) ?? options.VendorAnchors;
        var own = options.Collateral is { } configured ? new GuardedCollateralSource(configured) : null;
        _collateral = _trustedSimulated is null ? own : new SimulatedCollateralSource(_trustedSimulated, time, own);
        _snpCrls = options.SnpCrls;
        _minimums = new(options.MinimumSgxTcbEvaluationDataNumber, options.MinimumTdxTcbEvaluationDataNumber);
    }

    /// <summary>Verifies and appraises <paramref name="login"/>'s evidence for <paramref name="function"/>.</summary>
    public async Task<LoginAppraisal> AppraiseAsync(LoginRequest login, FunctionRecord function, CancellationToken ct)
    {
        var log = new CheckLog();
        var (claims, tcb) = login.Tee == TeeType.Snp ? VerifySnp(login, log) : await VerifyDcapAsync(login, log, ct).ConfigureAwait(false);
        var revision = AppraiseReferenceValues(function, claims, tcb, _minimums, log);
        var expected = ReportDataBinding.ForFunction(login.Nonce, login.CsrSpki);
        log.Require(ReportDataBinding.Matches(claims.ReportData.Span, expected), BindingCheck,
            "REPORT_DATA is not SHA-512(\"morphisms/attest/v1\" ‖ nonce ‖ SHA-256(CSR public key)) for this nonce and this CSR");
        return new LoginAppraisal(AttestationResult.From(claims, log, tcb?.Status, tcb?.AdvisoryIds), revision);
    }

    private (EvidenceClaims, TcbEvaluation?) VerifySnp(LoginRequest login, CheckLog log)
    {
        var report = SnpReport.Parse(login.Evidence);
        var endorsements = login.SnpEndorsements ?? SimulatedEndorsements(report);
        if (endorsements is null)
        {
            log.Fail(EvidenceVerifier.MissingSnpCertificateCheck, "the VCEK/VLEK certificate is missing: send it, base64-encoded, as endorsements");
            return (new SnpClaims(report), null);
        }

        var options = new SnpVerifyOptions { Anchors = _anchors, Time = _time };
        var revocationChecked = false;
        if (_snpCrls?.For(endorsements.KeyCertificate) is [var first, ..] crls)
        {
            // The verifier takes one CRL in its options and one with the endorsements (a login cannot send one), which
            // fits AMD's two per product: the VCEK (ASK) and the VLEK (ASVK) CRL.
            options = options with { Crl = first.RawData, CheckCrl = true };
            endorsements = crls.Count > 1 ? new SnpEndorsements(endorsements.KeyCertificate, endorsements.Chain, crls[1]) : endorsements;
            revocationChecked = true;
        }

        var verification = new SnpVerifier(options).Verify(report, endorsements);
        log.Append(verification.Log);

        // Said on every login it applies to, not only at start, so the result shows what was not checked. A VCEK the KMS
        // supplied itself (its own simulated TEE's) has nothing to revoke.
        if (!revocationChecked && login.SnpEndorsements is not null)
        {
            var product = (verification.Claims as SnpClaims)?.Product ?? "its product line";
            log.Warn(_snpCrls is null
                ? "the KMS has no AMD CRLs: this login's VCEK/VLEK and the ASK/ASVK that issued it were not checked for revocation"
                : $"the KMS has no AMD CRL for {product}: this login's VCEK/VLEK and the ASK/ASVK that issued it were not checked for revocation");
        }

        return (verification.Claims, null);
    }

    /// <summary>The trusted simulated TEE's VCEK when the report names its chip: it has no AMD KDS to fetch it from.</summary>
    private SnpEndorsements? SimulatedEndorsements(SnpReport report) =>
        _trustedSimulated is { } tee && report.ChipId.Span.SequenceEqual(tee.ChipId) ? new SnpEndorsements(tee.Vcek) : null;

    private async Task<(EvidenceClaims, TcbEvaluation?)> VerifyDcapAsync(LoginRequest login, CheckLog log, CancellationToken ct)
    {
        // With collateral of its own the KMS decides what is current: a login's collateral is used only where it is at
        // least as new, so an instance cannot pick the TCB info from before a TCB recovery or a CRL from before a
        // revocation. Without, the login's collateral is all there is (the server warned at start, and the result says so).
        var (collateral, source) = (login.Collateral, _collateral) switch
        {
            ({ } offered, { } own) => (null, new OfferedCollateralSource(own, offered)),
            var (offered, own) => (offered, own),
        };
        var options = new DcapVerifyOptions { Anchors = _anchors, Time = _time, Collateral = collateral, CollateralSource = source };
        DcapVerification verification;
        try
        {
            verification = await DcapVerifier.VerifyAsync(login.Evidence, options, ct).ConfigureAwait(false);
        }
        catch (FormatException e)
        {
            throw KmsException.BadRequest($"invalid value for parameter 'evidence': {e.Message}");
        }

        log.Append(verification.Log);
        if (collateral is not null)
        {
            // Said on every such login, not only at start: this verdict rests on collateral the instance chose.
            log.Warn("the KMS has no DCAP collateral of its own: the instance's was used as sent, its freshness unchecked (it may predate a TCB recovery or a revocation)");
        }
        else if (source is OfferedCollateralSource { Unchecked.Count: > 0 } offeredSource)
        {
            // Only without an operator's source (which refuses what it lacks, GuardedCollateralSource): the trusted
            // simulated TEE makes collateral for its own platform and none for any other.
            log.Warn($"the KMS has no collateral of its own for {string.Join(", ", offeredSource.Unchecked)} of this platform: the instance's was used as sent, its freshness unchecked");
        }

        return (verification.Claims, verification.Tcb);
    }

    private static FunctionRevision? AppraiseReferenceValues(FunctionRecord function, EvidenceClaims claims, TcbEvaluation? tcb, EvaluationMinimums minimums, CheckLog log)
    {
        (FunctionRevision Revision, CheckLog Log)? first = null;
        foreach (var revision in function.ActiveRevisions)
        {
            if (Appraiser(revision.ReferenceValues, claims, tcb, minimums) is not { } appraise)
            {
                continue;
            }

            var outcome = appraise();

            // Registration refuses such values, but a revision stored (or an update proposed) before that rule would
            // still let every guest of a shared image in.
            if (Unbound(revision.ReferenceValues, claims) is { } missing)
            {
                outcome.Fail(WorkloadBindingCheck, missing.ToLoginRefusal(function.Name, revision.Revision));
            }

            if (outcome.Passed)
            {
                log.Append(outcome);
                return revision;
            }

            first ??= (revision, outcome);
        }

        if (first is { } failed)
        {
            log.Append(failed.Log);
            return failed.Revision;
        }

        // Said plainly, so the operator of a retired build learns why it stopped working rather than "not registered".
        if (function.Revisions.LastOrDefault(r => r.Status == RevisionStatus.Retired && Appraiser(r.ReferenceValues, claims, tcb, minimums) is not null) is { } retired)
        {
            log.Fail(ReferenceValuesCheck, $"revision retired: measurement {Hex.Of(claims.Measurement)} is registered only by revision {retired.Revision} of function {function.Name}, which was retired");
            return null;
        }

        var kind = claims.Simulated ? $"simulated {claims.Tee.ToWireName()}-format" : claims.Tee.ToWireName();
        log.Fail(ReferenceValuesCheck, $"measurement {Hex.Of(claims.Measurement)} ({kind}) not registered for function {function.Name}");
        return null;
    }

    /// <summary>The appraisal of one revision, or null when the revision does not register this evidence's identity.</summary>
    private static Func<CheckLog>? Appraiser(ReferenceValues values, EvidenceClaims claims, TcbEvaluation? tcb, EvaluationMinimums minimums)
    {
        var measurement = Hex.Of(claims.Measurement);
        return claims switch
        {
            SnpClaims snp when claims.Simulated => values.Simulated?.Snp?.Contains(measurement) == true
                ? () => SnpValidator.Validate(snp, ReferencePolicies.SimulatedSnp(measurement)) : null,
            SgxClaims sgx when claims.Simulated => values.Simulated?.Sgx?.Contains(measurement) == true
                ? () => SgxValidator.Validate(sgx, tcb, ReferencePolicies.SimulatedSgx(measurement) with { MinimumTcbEvaluationDataNumber = minimums.Sgx }) : null,
            SnpClaims snp => values.Snp is { } r && r.Measurements.Contains(measurement)
                ? () => SnpValidator.Validate(snp, ReferencePolicies.Snp(r)) : null,
            SgxClaims sgx => values.Sgx is { } r && Registers(r, sgx)
                ? () => SgxValidator.Validate(sgx, tcb, ReferencePolicies.Sgx(r) with { MinimumTcbEvaluationDataNumber = minimums.Sgx }) : null,
            TdxClaims tdx when !claims.Simulated => values.Tdx is { } r && r.MrTds.Contains(measurement)
                ? () => TdxValidator.Validate(tdx, tcb, ReferencePolicies.Tdx(r) with { MinimumTcbEvaluationDataNumber = minimums.Tdx }) : null,
            _ => null,
        };
    }

    private static MissingBinding? Unbound(ReferenceValues values, EvidenceClaims claims) => claims switch
    {
        _ when claims.Simulated => null,
        SnpClaims => values.Snp is { } r ? WorkloadBinding.Check(r) : null,
        TdxClaims => values.Tdx is { } r ? WorkloadBinding.Check(r) : null,
        _ => null,
    };

    private static bool Registers(SgxReference r, SgxClaims claims) =>
        (r.MrEnclaves is null || r.MrEnclaves.Contains(Hex.Of(claims.MrEnclave)))
        && (r.MrSigner is null || (r.MrSigner == Hex.Of(claims.MrSigner) && r.IsvProdId == claims.IsvProdId));
}

/// <summary>The operator's minimum tcbEvaluationDataNumber per DCAP TEE (null: any).</summary>
internal readonly record struct EvaluationMinimums(int? Sgx, int? Tdx);

/// <summary>
/// The operator's collateral source, with its failures (Intel PCS or a PCCS unreachable, or answering something that
/// is not collateral) made a 503 naming the source's problem: not the instance's fault, and not a reason to fall back
/// on the instance's own collateral, which is exactly what the source is there to check. An item the source lacks for
/// the platform (a 404 from PCS, a file missing from the operator's directory) is refused the same way: whoever sits
/// between the KMS and a PCCS could answer 404 for the PCK CRL, and taking the instance's item in its place would let
/// a revoked or out-of-date platform choose its own.
/// </summary>
internal sealed class GuardedCollateralSource(ICollateralSource inner) : ICollateralSource
{
    /// <inheritdoc />
    public async ValueTask<DcapCollateral?> GetDcapCollateralAsync(DcapCollateralRequest request, CancellationToken cancellationToken = default)
    {
        DcapCollateral? own;
        try
        {
            own = await inner.GetDcapCollateralAsync(request, cancellationToken).ConfigureAwait(false);
        }
        catch (Exception e) when (e is HttpRequestException or EvidenceFormatException
            || (e is TaskCanceledException && !cancellationToken.IsCancellationRequested))
        {
            throw new KmsException(503, $"the KMS's DCAP collateral source is unavailable, retry later: {e.Message}");
        }

        // The verifier needs all four: an item the source lacks could only come, unchecked, from the instance.
        string?[] missing =
        [
            own?.TcbInfo is null ? "tcb_info" : null,
            own?.QeIdentity is null ? "qe_identity" : null,
            own?.PckCrl is null ? "pck_crl" : null,
            own?.RootCaCrl is null ? "root_ca_crl" : null,
        ];
        if (missing.OfType<string>().ToList() is { Count: > 0 } lacking)
        {
            var ca = request.CaType == PckCaType.Processor ? "processor" : "platform";
            throw new KmsException(503,
                $"the KMS's DCAP collateral source has no {string.Join(", ", lacking)} for this platform ({request.Tee.ToWireName()}, FMSPC "
                + $"{request.Fmspc.ToUpperInvariant()}, PCK {ca} CA{(own?.Origin is { } origin ? $", from {origin}" : "")}): Intel PCS or the PCCS "
                + "answered 404, or the collateral directory lacks it; the instance's collateral is not used in its place");
        }

        return own;
    }
}

/// <summary>The verdict on login evidence and the revision it was appraised against (null when none registers it).</summary>
/// <param name="Result">Claims, status and every failed check.</param>
/// <param name="Revision">The matching revision.</param>
internal sealed record LoginAppraisal(AttestationResult Result, FunctionRevision? Revision);
