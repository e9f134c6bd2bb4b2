using Morphisms.Attestation.Collateral;

namespace Morphisms.Attestation.Abi.Dcap;

/// <summary>
/// Claims common to SGX and TDX quotes: the quote header, the quoting enclave's report and what the
/// PCK certificate says about the platform.
/// </summary>
public abstract record DcapClaims : EvidenceClaims
{
    /// <summary>The quote header.</summary>
    public required QuoteHeader Header { get; init; }

    /// <summary>The quoting enclave's report (QE for SGX, TD QE for TDX).</summary>
    public required SgxReportBody QeReport { get; init; }

    /// <summary>The PCK certificate's SGX extension (FMSPC, TCB components, PCESVN); null when the chain could not be read.</summary>
    public PckExtensions? Pck { get; init; }

    /// <summary>Which PCK CA issued the PCK certificate; null when the chain could not be read.</summary>
    public PckCaType? PckCa { get; init; }

    /// <summary>Builds the claims of a parsed quote (SGX or TDX by its body type).</summary>
    public static DcapClaims FromQuote(DcapQuote quote, PckExtensions? pck = null, PckCaType? pckCa = null, bool simulated = false) =>
        quote.SgxBody is { } sgx
            ? new SgxClaims { Header = quote.Header, QeReport = quote.Signature.QeReport, Report = sgx, Pck = pck, PckCa = pckCa, Simulated = simulated }
            : new TdxClaims { Header = quote.Header, QeReport = quote.Signature.QeReport, Report = quote.TdBody!, Pck = pck, PckCa = pckCa, Simulated = simulated };
}
