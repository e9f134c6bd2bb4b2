using System.Security.Cryptography.X509Certificates;
using System.Text;
using System.Text.Json;

namespace Morphisms.Attestation.Collateral;

/// <summary>
/// One-file DCAP collateral. Reads three layouts: our own bundle (<c>docs/collateral.md</c>), Phala
/// dcap-qvl's <c>QuoteCollateralV3</c> JSON (raw <c>tcb_info</c>/<c>qe_identity</c> strings, hex
/// signatures, hex-DER CRLs, PEM issuer chains) and automata dcap-rs's "full collateral" JSON (the
/// Intel documents embedded as objects, PEM CRLs). Writes our own layout.
/// </summary>
public static class CollateralBundle
{
    /// <summary>The value of the <c>format</c> field this library writes.</summary>
    public const string FormatName = "morphisms-dcap-collateral/v1";

    /// <summary>
    /// Upper bound on the certificates one bundle's chains may hold together, as for a quote's PCK chain and SNP
    /// endorsements: a bundle can come with a login, and each certificate is parsed and may cost the verifier a signature
    /// check, so a hostile megabyte of them must not. Real bundles hold four at most (the TCB signing certificate and
    /// the root, once per chain field).
    /// </summary>
    public const int MaxCertificates = 8;

    private static readonly string[] ChainKeys =
    [
        "tcb_signing_chain", "tcb_info_issuer_chain", "qe_identity_issuer_chain", "tcb_info_and_qe_identity_issuer_chain",
    ];

    /// <summary>True when the JSON object looks like a bundle (has any of the bundle's item keys).</summary>
    internal static bool IsBundle(JsonElement root) =>
        root.ValueKind == JsonValueKind.Object
        && (root.TryGetProperty("tcb_info", out _) || root.TryGetProperty("qe_identity", out _)
            || root.TryGetProperty("pck_crl", out _) || root.TryGetProperty("root_ca_crl", out _));

    /// <summary>
    /// Parses a bundle. <paramref name="caType"/> only matters for dcap-rs files without a <c>pck_crl</c>,
    /// which keep one CRL per PCK CA (<c>platform_ca_crl</c>, <c>processor_ca_crl</c>).
    /// </summary>
    /// <exception cref="EvidenceFormatException">The JSON or one of its items is malformed; the message names the field.</exception>
    public static DcapCollateral Parse(ReadOnlyMemory<byte> json, PckCaType caType = PckCaType.Platform, string? origin = null)
    {
        using var document = CollateralJson.Parse(json, "collateral bundle");
        if (!IsBundle(document.RootElement))
        {
            throw new EvidenceFormatException("collateral bundle", "none of tcb_info, qe_identity, pck_crl, root_ca_crl is present");
        }

        return ReadContents(document.RootElement).ToCollateral(caType, origin);
    }

    /// <summary>Writes collateral in this library's bundle layout (signed bodies as JSON strings, hex signatures and CRLs, PEM chain).</summary>
    public static string ToJson(DcapCollateral collateral)
    {
        var strictUtf8 = new UTF8Encoding(encoderShouldEmitUTF8Identifier: false, throwOnInvalidBytes: true);
        using var buffer = new MemoryStream();
        using (var writer = new Utf8JsonWriter(buffer, new JsonWriterOptions { Indented = true }))
        {
            writer.WriteStartObject();
            writer.WriteString("format", FormatName);
            if (collateral.TcbInfo is { } tcb)
            {
                writer.WriteString("tcb_info", strictUtf8.GetString(tcb.Body));
                writer.WriteString("tcb_info_signature", Hex.Of(tcb.Signature));
            }

            if (collateral.QeIdentity is { } qe)
            {
                writer.WriteString("qe_identity", strictUtf8.GetString(qe.Body));
                writer.WriteString("qe_identity_signature", Hex.Of(qe.Signature));
            }

            if (collateral.PckCrl is { } pck)
            {
                writer.WriteString("pck_crl", Hex.Of(pck));
            }

            if (collateral.RootCaCrl is { } root)
            {
                writer.WriteString("root_ca_crl", Hex.Of(root));
            }

            if (collateral.TcbSigningCertificates.Count > 0)
            {
                writer.WriteString("tcb_signing_chain", string.Concat(collateral.TcbSigningCertificates.Select(c => c.ExportCertificatePem() + "\n")));
            }

            writer.WriteEndObject();
        }

        return Encoding.UTF8.GetString(buffer.ToArray());
    }

    internal static BundleContents ReadContents(JsonElement root)
    {
        var certificates = new List<X509Certificate2>();
        foreach (var key in ChainKeys)
        {
            if (TryText(root, key, out var pem))
            {
                certificates.AddRange(CollateralEncoding.ParsePemCertificates(pem, key, MaxCertificates - certificates.Count,
                    $"the bundle's chains hold more than {MaxCertificates} certificates (CollateralBundle.MaxCertificates; a chain is the TCB signing certificate and the root)"));
            }
        }

        return new BundleContents(
            ReadSigned(root, "tcb_info", CollateralDocumentKind.TcbInfo),
            ReadSigned(root, "qe_identity", CollateralDocumentKind.EnclaveIdentity),
            ReadBinary(root, "pck_crl"),
            ReadBinary(root, "platform_ca_crl"),
            ReadBinary(root, "processor_ca_crl"),
            ReadBinary(root, "root_ca_crl"),
            [.. certificates.DistinctBy(c => c.Thumbprint)]);
    }

    private static SignedCollateralJson? ReadSigned(JsonElement root, string key, CollateralDocumentKind kind)
    {
        if (!CollateralJson.TryProperty(root, key, out var value))
        {
            return null;
        }

        switch (value.ValueKind)
        {
            case JsonValueKind.Object when IntelCollateralDocument.Detect(value) == kind:
                // dcap-rs embeds Intel's whole document; the body is sliced from this file's own bytes.
                return IntelCollateralDocument.FromElement(value, kind);

            case JsonValueKind.Object:
                return new SignedCollateralJson(
                    System.Runtime.InteropServices.JsonMarshal.GetRawUtf8Value(value).ToArray(),
                    SignatureFor(root, key));

            case JsonValueKind.String:
            {
                var text = value.GetString()!;
                if (text.Trim().Length == 0)
                {
                    return null;
                }

                var bytes = Encoding.UTF8.GetBytes(text);
                using var inner = CollateralJson.Parse(bytes, key);
                return IntelCollateralDocument.Detect(inner.RootElement) == kind
                    ? IntelCollateralDocument.FromElement(inner.RootElement, kind)
                    : new SignedCollateralJson(bytes, SignatureFor(root, key));
            }

            default:
                throw new EvidenceFormatException(key, "expected the signed JSON as a string or an object");
        }
    }

    private static byte[] SignatureFor(JsonElement root, string key) =>
        IntelCollateralDocument.ParseSignature(CollateralJson.String(root, $"{key}_signature", ""), $"{key}_signature");

    private static byte[]? ReadBinary(JsonElement root, string key) =>
        TryText(root, key, out var text) ? CollateralEncoding.DecodeText(text, key) : null;

    private static bool TryText(JsonElement root, string key, out string text)
    {
        text = "";
        if (!CollateralJson.TryProperty(root, key, out var value))
        {
            return false;
        }

        if (value.ValueKind != JsonValueKind.String)
        {
            throw new EvidenceFormatException(key, "expected a string");
        }

        text = value.GetString()!;

        // dcap-rs writes "" for a CRL it does not have.
        return text.Trim().Length > 0;
    }
}

/// <summary>Everything one bundle file holds, before a PCK CA type is chosen.</summary>
internal sealed record BundleContents(
    SignedCollateralJson? TcbInfo,
    SignedCollateralJson? QeIdentity,
    byte[]? PckCrl,
    byte[]? PlatformCaCrl,
    byte[]? ProcessorCaCrl,
    byte[]? RootCaCrl,
    IReadOnlyList<X509Certificate2> Certificates)
{
    /// <summary>
    /// <c>pck_crl</c> wins over the per-CA fields: dcap-rs files carry a stale <c>processor_ca_crl</c>
    /// next to the current <c>pck_crl</c>.
    /// </summary>
    public byte[]? PckCrlFor(PckCaType caType) =>
        PckCrl ?? (caType == PckCaType.Processor ? ProcessorCaCrl : PlatformCaCrl);

    public DcapCollateral ToCollateral(PckCaType caType, string? origin) => new()
    {
        TcbInfo = TcbInfo,
        QeIdentity = QeIdentity,
        PckCrl = PckCrlFor(caType),
        RootCaCrl = RootCaCrl,
        TcbSigningCertificates = Certificates,
        Origin = origin,
    };
}
