using Morphisms.Attestation.Abi.Dcap;
using Morphisms.Attestation.Collateral;

namespace Morphisms.Attestation.Verify.Dcap;

/// <summary>
/// Verifies the authenticity of an Intel DCAP quote (SGX or TDX) end to end: the quote signature,
/// the QE report data binding, the PCK chain to a trusted Intel root, the QE report signature, the
/// collateral (TCB info, QE identity, CRLs), revocation, and Intel's TCB-level algorithm. Every check
/// runs and every failure is reported; the claims are returned even when verification fails.
/// Without collateral a quote is never accepted: the failures name each missing item.
/// </summary>
/// <remarks>
/// Results that do not depend on the quote's signatures are cached (PCK chain checks by chain bytes
/// and anchors; collateral checks by content, anchors and time window; key imports; TCB evaluations),
/// so a repeat quote from a known platform costs two ECDSA verifications and some hashing.
/// Collateral objects are treated as immutable once passed in. A collateral source is asked only when
/// the PCK chain verified to a trusted root, so a made-up FMSPC never causes a fetch.
/// </remarks>
public static class DcapVerifier
{
    private static readonly DcapVerifyOptions Defaults = new();

    /// <summary>Parses and verifies a quote.</summary>
    /// <exception cref="EvidenceFormatException">The quote is malformed (nothing can be claimed from it).</exception>
    public static ValueTask<DcapVerification> VerifyAsync(ReadOnlyMemory<byte> quote, DcapVerifyOptions? options = null, CancellationToken cancellationToken = default) =>
        VerifyAsync(DcapQuote.Parse(quote.Span), options, cancellationToken);

    /// <summary>Verifies a parsed quote.</summary>
    public static ValueTask<DcapVerification> VerifyAsync(DcapQuote quote, DcapVerifyOptions? options = null, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(quote);
        options ??= Defaults;
        var time = options.Time.GetUtcNow();
        var log = new CheckLog();

        QuoteSignatureVerifier.VerifyQuoteSignature(quote, log);
        QuoteSignatureVerifier.VerifyQeReportData(quote, log);
        var chain = PckChainVerifier.Verify(quote.Signature.CertificationData, options.Anchors, time, log);
        QuoteSignatureVerifier.VerifyQeReportSignature(quote, chain, log);

        if (options.Collateral is not null || options.CollateralSource is null)
        {
            return ValueTask.FromResult(Complete(quote, chain, options.Collateral, options, time, log));
        }

        return FetchAndCompleteAsync(quote, chain, options, time, log, cancellationToken);
    }

    private static async ValueTask<DcapVerification> FetchAndCompleteAsync(
        DcapQuote quote, PckChain chain, DcapVerifyOptions options, DateTimeOffset time, CheckLog log, CancellationToken cancellationToken)
    {
        DcapCollateral? collateral = null;
        if (!chain.ReachesTrustedRoot)
        {
            // Anyone can make a chain whose leaf names any FMSPC; fetching for it would let an unauthenticated
            // caller drive requests to Intel PCS (and fill the source's cache) with made-up platforms.
            log.Fail("dcap.collateral", $"collateral not fetched: the PCK chain does not verify to a trusted Intel root (see {PckChainVerifier.Check})");
        }
        else if (chain.Extensions is null || chain.CaType is null)
        {
            log.Fail("dcap.collateral", "cannot ask the collateral source: the PCK certificate's FMSPC or issuing CA is unknown");
        }
        else
        {
            var request = new DcapCollateralRequest(quote.Tee, chain.Extensions.FmspcHex, chain.CaType.Value);
            collateral = await options.CollateralSource!.GetDcapCollateralAsync(request, cancellationToken).ConfigureAwait(false);
            if (collateral is null)
            {
                log.Fail("dcap.collateral", $"the collateral source has nothing for {quote.Tee.ToWireName()} FMSPC {request.Fmspc} ({request.CaType} CA)");
            }
        }

        return Complete(quote, chain, collateral, options, time, log);
    }

    private static DcapVerification Complete(DcapQuote quote, PckChain chain, DcapCollateral? collateral, DcapVerifyOptions options, DateTimeOffset time, CheckLog log)
    {
        // With no collateral at all, checking an empty set makes the collateral verifier name every
        // missing item, exactly as it does when one item is missing from a set.
        var verified = CollateralCache.Verify(collateral ?? new DcapCollateral(), quote.Tee, options.Anchors, time, log);
        PckRevocationChecker.Verify(chain, verified, log);

        TcbEvaluation? tcb = null;
        if (chain.Extensions is { } pck)
        {
            tcb = TcbEvaluationCache.Evaluate(verified, chain, PlatformOf(pck), TdxOf(quote), QeOf(quote.Signature.QeReport), log);
        }
        else
        {
            log.Fail(TcbEvaluator.TcbStatusCheck, "TCB status not computed: the PCK certificate's TCB is unknown");
        }

        var claims = DcapClaims.FromQuote(quote, chain.Extensions, chain.CaType, simulated: chain.Simulated || verified.Simulated);
        return new DcapVerification
        {
            Quote = quote,
            Claims = claims,
            Log = log,
            PckChain = chain,
            Collateral = collateral is null ? null : verified,
            Tcb = tcb,
        };
    }

    private static PlatformTcb PlatformOf(PckExtensions pck) =>
        new(pck.Fmspc.ToArray(), pck.PceId.ToArray(), pck.SgxTcbComponents.ToArray(), pck.PceSvn);

    private static TdxTcb? TdxOf(DcapQuote quote) => quote.TdBody is not { } td ? null
        : new TdxTcb(td.TeeTcbSvn.ToArray(), td.MrSignerSeam.ToArray(), td.SeamAttributes.ToArray()) { TeeTcbSvn2 = td.TeeTcbSvn2?.ToArray() };

    private static QeReportIdentity QeOf(SgxReportBody qe) =>
        new(qe.MrSigner.ToArray(), qe.IsvProdId, qe.IsvSvn, qe.MiscSelect, qe.Attributes.ToArray());
}
