namespace Morphisms.Attestation.Abi.Dcap;

/// <summary>
/// The ECDSA signature data that follows the quote body. v3 lays the QE report out directly; v4/v5
/// wrap it in certification data of type 6, whose nested entry carries the PCK chain. Both are
/// normalised to the same fields here.
/// </summary>
public sealed record QuoteSignatureData
{
    /// <summary>ECDSA P-256 signature over header ‖ body by the attestation key, r ‖ s (64 bytes).</summary>
    public required ReadOnlyMemory<byte> QuoteSignature { get; init; }

    /// <summary>The attestation public key, x ‖ y (64 bytes).</summary>
    public required ReadOnlyMemory<byte> AttestationKey { get; init; }

    /// <summary>The quoting enclave's report (signed by the PCK key).</summary>
    public required SgxReportBody QeReport { get; init; }

    /// <summary>ECDSA P-256 signature over the QE report by the PCK key, r ‖ s (64 bytes).</summary>
    public required ReadOnlyMemory<byte> QeReportSignature { get; init; }

    /// <summary>QE authentication data (hashed with the attestation key into the QE report data).</summary>
    public required ReadOnlyMemory<byte> QeAuthData { get; init; }

    /// <summary>The certification data that identifies the PCK (type 5 = PEM chain for every quote Intel's QE makes).</summary>
    public required CertificationData CertificationData { get; init; }

    /// <summary>Type of the outer certification data in v4/v5 quotes (always 6); null in v3.</summary>
    public ushort? OuterCertificationDataType { get; init; }

    internal static QuoteSignatureData Read(ref WireReader reader, int version)
    {
        var quoteSignature = reader.ReadBytes(64, "quote.signature_data.quote_signature");
        var attestationKey = reader.ReadBytes(64, "quote.signature_data.attestation_key");
        if (version == 3)
        {
            var (qeReport, qeSignature, authData) = ReadQeReportPart(ref reader, "quote.signature_data");
            var certification = CertificationData.Read(ref reader, "quote.signature_data.certification_data");
            return new QuoteSignatureData
            {
                QuoteSignature = quoteSignature,
                AttestationKey = attestationKey,
                QeReport = qeReport,
                QeReportSignature = qeSignature,
                QeAuthData = authData,
                CertificationData = certification,
            };
        }

        var outer = CertificationData.Read(ref reader, "quote.signature_data.certification_data");
        if (outer.Type != (ushort)CertificationDataType.QeReportCertificationData)
        {
            throw new EvidenceFormatException("quote.signature_data.certification_data.type",
                $"unsupported certification data type {outer.Type} in a v{version} quote (expected 6 = QE report certification data)");
        }

        const string inner = "quote.signature_data.qe_report_certification_data";
        var nested = new WireReader(outer.Data, 0, outer.Data.Length);
        var (report, signature, auth) = ReadQeReportPart(ref nested, inner);
        var chain = CertificationData.Read(ref nested, $"{inner}.certification_data");
        nested.EnsureConsumed(inner);
        return new QuoteSignatureData
        {
            QuoteSignature = quoteSignature,
            AttestationKey = attestationKey,
            QeReport = report,
            QeReportSignature = signature,
            QeAuthData = auth,
            CertificationData = chain,
            OuterCertificationDataType = outer.Type,
        };
    }

    private static (SgxReportBody Report, ReadOnlyMemory<byte> Signature, ReadOnlyMemory<byte> AuthData) ReadQeReportPart(ref WireReader reader, string name)
    {
        var report = SgxReportBody.Read(ref reader, $"{name}.qe_report");
        var signature = reader.ReadBytes(64, $"{name}.qe_report_signature");
        var authSize = reader.ReadUInt16($"{name}.qe_auth_data.size");
        var authData = reader.ReadSized(authSize, $"{name}.qe_auth_data");
        return (report, signature, authData);
    }
}
