namespace Morphisms.Attestation.Abi.Dcap;

/// <summary>
/// A parsed Intel DCAP quote: SGX v3/v4 or TDX v4/v5 with an ECDSA-P256 attestation key. Parsing
/// follows the length fields; bytes after the signature data (padding of fixed-size buffers, as
/// configfs-tsm and some SDKs produce) are ignored and counted in <see cref="TrailingByteCount"/>.
/// Parsing checks structure only; nothing here is authenticated until a verifier has run.
/// </summary>
public sealed record DcapQuote
{
    /// <summary>The quote bytes (a private copy of the input, including any trailing bytes).</summary>
    public required ReadOnlyMemory<byte> Raw { get; init; }

    /// <summary>The 48-byte header.</summary>
    public required QuoteHeader Header { get; init; }

    /// <summary>Which body the quote carries.</summary>
    public required QuoteBodyType BodyType { get; init; }

    /// <summary>The enclave report, for SGX quotes.</summary>
    public SgxReportBody? SgxBody { get; init; }

    /// <summary>The TD report, for TDX quotes.</summary>
    public TdReportBody? TdBody { get; init; }

    /// <summary>The bytes the quote signature covers: header ‖ body (v5: header ‖ body_type ‖ body_size ‖ body).</summary>
    public required ReadOnlyMemory<byte> SignedRegion { get; init; }

    /// <summary>The signature data.</summary>
    public required QuoteSignatureData Signature { get; init; }

    /// <summary>Offset of the signature data (after its u32 length field).</summary>
    public required int SignatureDataOffset { get; init; }

    /// <summary>Length of the signature data as declared in the quote.</summary>
    public required int SignatureDataLength { get; init; }

    /// <summary>How many bytes follow the signature data (ignored).</summary>
    public required int TrailingByteCount { get; init; }

    /// <summary>The TEE the quote is from.</summary>
    public TeeType Tee => BodyType == QuoteBodyType.SgxReport ? TeeType.Sgx : TeeType.Tdx;

    /// <summary>The 64 bytes of report data in the body.</summary>
    public ReadOnlyMemory<byte> ReportData => SgxBody?.ReportData ?? TdBody!.ReportData;

    /// <summary>Parses a quote.</summary>
    /// <exception cref="EvidenceFormatException">Truncated, inconsistent, or an unsupported version, key type or body type; the message names the field and offset.</exception>
    public static DcapQuote Parse(ReadOnlySpan<byte> bytes)
    {
        // A private copy: claims and signatures refer into it, and the caller may reuse its buffer.
        var buffer = bytes.ToArray();
        var reader = new WireReader(buffer, 0, buffer.Length);
        var header = QuoteHeader.Read(ref reader);

        QuoteBodyType bodyType;
        if (header.Version == 5)
        {
            var rawType = reader.ReadUInt16("quote.body_type");
            var declaredSize = reader.ReadUInt32("quote.body_size");
            bodyType = rawType switch
            {
                1 => QuoteBodyType.SgxReport,
                2 => QuoteBodyType.TdReport10,
                3 => QuoteBodyType.TdReport15,
                _ => throw new EvidenceFormatException("quote.body_type",
                    $"unsupported body type {rawType} at offset {QuoteHeader.Size} (supported: 1 = SGX report, 2 = TD report 1.0, 3 = TD report 1.5)"),
            };
            if ((bodyType == QuoteBodyType.SgxReport) != (header.Tee == TeeType.Sgx))
            {
                throw new EvidenceFormatException("quote.body_type", $"body type {rawType} does not match tee_type 0x{header.TeeTypeValue:x}");
            }

            var expected = BodySize(bodyType);
            if (declaredSize != expected)
            {
                throw new EvidenceFormatException("quote.body_size", $"{declaredSize} does not match body type {rawType} (expected {expected})");
            }
        }
        else
        {
            bodyType = header.Tee == TeeType.Sgx ? QuoteBodyType.SgxReport : QuoteBodyType.TdReport10;
        }

        SgxReportBody? sgx = null;
        TdReportBody? td = null;
        switch (bodyType)
        {
            case QuoteBodyType.SgxReport:
                sgx = SgxReportBody.Read(ref reader, "quote.body.sgx_report");
                break;
            case QuoteBodyType.TdReport10:
                td = TdReportBody.Read(ref reader, TdReportVersion.V10, "quote.body.td_report");
                break;
            default:
                td = TdReportBody.Read(ref reader, TdReportVersion.V15, "quote.body.td_report15");
                break;
        }

        var signedRegion = new ReadOnlyMemory<byte>(buffer, 0, reader.Position);
        var signatureLength = reader.ReadUInt32("quote.signature_data_len");
        var signatureBytes = reader.ReadSized(signatureLength, "quote.signature_data");
        var signatureOffset = reader.Position - signatureBytes.Length;
        var signatureReader = new WireReader(buffer, signatureOffset, reader.Position);
        var signature = QuoteSignatureData.Read(ref signatureReader, header.Version);
        signatureReader.EnsureConsumed("quote.signature_data");

        return new DcapQuote
        {
            Raw = buffer,
            Header = header,
            BodyType = bodyType,
            SgxBody = sgx,
            TdBody = td,
            SignedRegion = signedRegion,
            Signature = signature,
            SignatureDataOffset = signatureOffset,
            SignatureDataLength = (int)signatureLength,
            TrailingByteCount = buffer.Length - reader.Position,
        };
    }

    private static int BodySize(QuoteBodyType type) => type switch
    {
        QuoteBodyType.SgxReport => SgxReportBody.Size,
        QuoteBodyType.TdReport10 => TdReportBody.SizeV10,
        _ => TdReportBody.SizeV15,
    };
}
