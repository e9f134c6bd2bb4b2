using System.Runtime.InteropServices;
using System.Text.Json;

namespace Morphisms.Attestation.Collateral;

/// <summary>The two kinds of signed JSON Intel publishes as DCAP collateral.</summary>
public enum CollateralDocumentKind
{
    /// <summary><c>{"tcbInfo":{…},"signature":"…"}</c>.</summary>
    TcbInfo,

    /// <summary><c>{"enclaveIdentity":{…},"signature":"…"}</c> (QE, TD QE or QVE identity).</summary>
    EnclaveIdentity,
}

/// <summary>
/// Reads Intel's signed collateral documents (<c>{"tcbInfo":{…},"signature":"hex"}</c> and
/// <c>{"enclaveIdentity":{…},"signature":"hex"}</c>) without re-serialising anything: the signature
/// covers the exact bytes of the inner value as Intel served them, so those bytes are sliced out of
/// the input unchanged.
/// </summary>
public static class IntelCollateralDocument
{
    /// <summary>The JSON property that holds the signed body for <paramref name="kind"/>.</summary>
    public static string BodyProperty(CollateralDocumentKind kind) =>
        kind == CollateralDocumentKind.TcbInfo ? "tcbInfo" : "enclaveIdentity";

    /// <summary>Parses a whole signed document of the given kind.</summary>
    /// <exception cref="EvidenceFormatException">The document is malformed, the body or signature is missing, or the signature is not 64 bytes of hex.</exception>
    public static SignedCollateralJson Parse(ReadOnlyMemory<byte> document, CollateralDocumentKind kind)
    {
        using var json = CollateralJson.Parse(document, BodyProperty(kind));
        return FromElement(json.RootElement, kind);
    }

    /// <summary>Returns the kind of a signed document, or null when the JSON is neither (for example a bundle).</summary>
    /// <exception cref="EvidenceFormatException">The bytes are not JSON.</exception>
    public static CollateralDocumentKind? Detect(ReadOnlyMemory<byte> document)
    {
        using var json = CollateralJson.Parse(document, "collateral");
        return Detect(json.RootElement);
    }

    internal static CollateralDocumentKind? Detect(JsonElement root) =>
        root.ValueKind != JsonValueKind.Object ? null
        : root.TryGetProperty("tcbInfo", out _) ? CollateralDocumentKind.TcbInfo
        : root.TryGetProperty("enclaveIdentity", out _) ? CollateralDocumentKind.EnclaveIdentity
        : null;

    /// <summary>
    /// Extracts body and signature from a document already parsed as part of a larger JSON file
    /// (dcap-rs bundles embed the documents as objects). The element must come from a
    /// <see cref="JsonDocument"/> over the original bytes, whose raw slices are the signed bytes.
    /// </summary>
    internal static SignedCollateralJson FromElement(JsonElement root, CollateralDocumentKind kind)
    {
        var name = BodyProperty(kind);
        CollateralJson.RequireObject(root, $"{name} document");
        var body = CollateralJson.RequireObject(CollateralJson.Property(root, name, ""), name);
        var signature = ParseSignature(CollateralJson.String(root, "signature", ""), $"{name} signature");
        return new SignedCollateralJson(JsonMarshal.GetRawUtf8Value(body).ToArray(), signature);
    }

    /// <summary>Parses a raw r‖s ECDSA P-256 signature given as 128 hex digits.</summary>
    /// <exception cref="EvidenceFormatException">It is not 64 bytes of hex.</exception>
    public static byte[] ParseSignature(string hex, string what)
    {
        byte[] bytes;
        try
        {
            bytes = Hex.Parse(hex, what);
        }
        catch (FormatException e)
        {
            throw new EvidenceFormatException(what, e.Message);
        }

        if (bytes.Length != 64)
        {
            throw new EvidenceFormatException(what, $"expected a 64-byte r||s ECDSA P-256 signature, found {bytes.Length} bytes");
        }

        return bytes;
    }
}
