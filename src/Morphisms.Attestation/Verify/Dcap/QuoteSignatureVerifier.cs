using System.Security.Cryptography;
using Morphisms.Attestation.Abi.Dcap;

namespace Morphisms.Attestation.Verify.Dcap;

/// <summary>
/// The three signature checks that tie a quote to its PCK: the attestation key signed the quote,
/// the PCK key signed the QE report, and the QE report vouches for the attestation key.
/// </summary>
public static class QuoteSignatureVerifier
{
    /// <summary>Check name: the quote signature by the attestation key.</summary>
    public const string QuoteSignatureCheck = "dcap.quote_signature";

    /// <summary>Check name: the QE report signature by the PCK key.</summary>
    public const string QeReportSignatureCheck = "dcap.qe_report_signature";

    /// <summary>Check name: the QE report data binding of the attestation key.</summary>
    public const string QeReportDataCheck = "dcap.qe_report_data";

    /// <summary>Checks the ECDSA P-256 signature over header ‖ body with the attestation key in the quote.</summary>
    public static bool VerifyQuoteSignature(DcapQuote quote, CheckLog log)
    {
        var signature = quote.Signature;
        return log.Require(
            EcdsaP256.Verify(signature.AttestationKey.Span, quote.SignedRegion.Span, signature.QuoteSignature.Span),
            QuoteSignatureCheck,
            "the quote signature does not verify with the attestation key");
    }

    /// <summary>
    /// Checks that QE report data = SHA-256(attestation key ‖ QE auth data) ‖ 32 zero bytes: this is
    /// what makes the attestation key the QE's, and so the quote signature Intel-rooted.
    /// </summary>
    public static bool VerifyQeReportData(DcapQuote quote, CheckLog log)
    {
        var signature = quote.Signature;
        var input = new byte[signature.AttestationKey.Length + signature.QeAuthData.Length];
        signature.AttestationKey.Span.CopyTo(input);
        signature.QeAuthData.Span.CopyTo(input.AsSpan(signature.AttestationKey.Length));
        Span<byte> expected = stackalloc byte[32];
        SHA256.HashData(input, expected);

        var reportData = signature.QeReport.ReportData.Span;
        return log.Require(
            reportData[..32].SequenceEqual(expected) && !reportData[32..].ContainsAnyExcept((byte)0),
            QeReportDataCheck,
            "the QE report data is not SHA-256(attestation key ‖ QE auth data) followed by zeros");
    }

    /// <summary>Checks the QE report signature with the PCK certificate's key.</summary>
    public static bool VerifyQeReportSignature(DcapQuote quote, PckChain chain, CheckLog log)
    {
        if (chain.LeafKey is null)
        {
            log.Fail(QeReportSignatureCheck, "not checked: no usable PCK certificate key");
            return false;
        }

        var signature = quote.Signature;
        return log.Require(
            EcdsaP256.Verify(chain.LeafKey, signature.QeReport.Raw.Span, signature.QeReportSignature.Span),
            QeReportSignatureCheck,
            "the QE report signature does not verify with the PCK certificate's key");
    }
}
