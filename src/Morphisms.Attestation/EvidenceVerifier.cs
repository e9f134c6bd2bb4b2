using Morphisms.Attestation.Abi.Dcap;
using Morphisms.Attestation.Abi.Snp;
using Morphisms.Attestation.Validate;
using Morphisms.Attestation.Verify.Dcap;
using Morphisms.Attestation.Verify.Snp;

namespace Morphisms.Attestation;

/// <summary>
/// Verifies and appraises evidence of any TEE type with one call: the entry point of the CLI and
/// the KMS. It dispatches to <see cref="SnpAttestation"/> or <see cref="DcapAttestation"/> and turns
/// the request's common knobs into each TEE's policy.
/// </summary>
public static class EvidenceVerifier
{
    /// <summary>Check name: the SNP report came without its VCEK/VLEK certificate.</summary>
    public const string MissingSnpCertificateCheck = "snp.endorsement";

    /// <summary>
    /// Verifies authenticity, then appraises. Missing endorsements or collateral are failures in the
    /// result (the claims are still parsed and returned), not exceptions.
    /// </summary>
    /// <exception cref="EvidenceFormatException">The evidence (or a supplied certificate) is not well-formed.</exception>
    public static async Task<AttestationResult> VerifyAsync(EvidenceVerificationRequest request, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(request);
        var time = request.EvaluationTime is { } at ? new FixedTimeProvider(at) : request.Time;
        switch (request.Tee)
        {
            case TeeType.Snp:
                return VerifySnp(request, time);
            case TeeType.Sgx:
            case TeeType.Tdx:
                var options = new DcapVerifyOptions { Anchors = request.Anchors, Time = time, CollateralSource = request.Collateral };
                var accepted = request.AcceptedTcbStatuses ?? DcapTcbPolicy.DefaultStatuses;
                var sgx = new SgxPolicy
                {
                    MrEnclaves = request.ExpectedMeasurement is { } mrEnclave ? [mrEnclave] : null,
                    ReportData = request.ExpectedReportData,
                    AllowDebug = request.AllowDebug,
                    AcceptedTcbStatuses = accepted,
                };
                var tdx = new TdxPolicy
                {
                    MrTds = request.ExpectedMeasurement is { } mrTd ? [mrTd] : null,
                    ReportData = request.ExpectedReportData,
                    AllowDebug = request.AllowDebug,
                    AcceptedTcbStatuses = accepted,
                };
                return request.Tee == TeeType.Sgx
                    ? await DcapAttestation.VerifySgxAsync(request.Evidence, sgx, options, cancellationToken).ConfigureAwait(false)
                    : await DcapAttestation.VerifyTdxAsync(request.Evidence, tdx, options, cancellationToken).ConfigureAwait(false);
            default:
                throw new ArgumentOutOfRangeException(nameof(request), request.Tee, "unknown TEE type");
        }
    }

    /// <summary>Parses evidence without verifying anything, for display.</summary>
    /// <exception cref="EvidenceFormatException">The evidence is not well-formed.</exception>
    public static EvidenceClaims Parse(TeeType tee, byte[] evidence) => tee switch
    {
        TeeType.Snp => new SnpClaims(SnpReport.Parse(evidence)),
        TeeType.Sgx or TeeType.Tdx => ParseQuote(tee, evidence),
        _ => throw new ArgumentOutOfRangeException(nameof(tee)),
    };

    private static EvidenceClaims ParseQuote(TeeType tee, byte[] evidence)
    {
        var quote = DcapQuote.Parse(evidence);
        if (quote.Tee != tee)
        {
            throw new EvidenceFormatException("tee_type", $"this is a {quote.Tee.ToWireName()} quote, not {tee.ToWireName()}");
        }

        // The PCK extensions (FMSPC, TCB components) are worth showing even when unverified.
        PckExtensions? pck = null;
        try
        {
            if (quote.Signature.CertificationData.IsPckCertificateChain)
            {
                pck = PckExtensions.FromCertificate(PckCertificateChainPem.Parse(quote.Signature.CertificationData.Data.Span)[0]);
            }
        }
        catch (EvidenceFormatException)
        {
            // An unreadable chain is reported by verification; display what the quote body says.
        }

        return DcapClaims.FromQuote(quote, pck);
    }

    private static AttestationResult VerifySnp(EvidenceVerificationRequest request, TimeProvider time)
    {
        var policy = new SnpPolicy
        {
            Measurements = request.ExpectedMeasurement is { } measurement ? [measurement] : null,
            ReportData = request.ExpectedReportData,
            MaximumVmpl = request.MaximumSnpVmpl,
            AllowDebug = request.AllowDebug,
        };
        if (request.SnpCertificate is null)
        {
            // Still parse and appraise, so the user sees what the report claims and everything wrong with it.
            var claims = new SnpClaims(SnpReport.Parse(request.Evidence));
            var log = new CheckLog();
            log.Fail(MissingSnpCertificateCheck, "VCEK/VLEK certificate missing: the report's signature cannot be checked without it (pass --vcek)");
            log.Append(SnpValidator.Validate(claims, policy));
            return AttestationResult.From(claims, log);
        }

        var endorsements = SnpEndorsements.Load(request.SnpCertificate, crl: request.SnpCrl);
        var options = new SnpVerifyOptions { Anchors = request.Anchors, Time = time, CheckCrl = request.SnpCrl is not null };
        return SnpAttestation.Verify(request.Evidence, endorsements, options, policy);
    }

    /// <summary>A clock stopped at the requested evaluation time.</summary>
    private sealed class FixedTimeProvider(DateTimeOffset now) : TimeProvider
    {
        public override DateTimeOffset GetUtcNow() => now;
    }
}
