using System.Text.Encodings.Web;
using System.Text.Json;
using System.Text.Json.Serialization;

namespace Morphisms.Samples.Signer;

/// <summary>The answer to <c>POST /sign</c>.</summary>
internal sealed record SignResponse(
    [property: JsonPropertyName("signature")] string Signature,
    [property: JsonPropertyName("public_key")] string PublicKey,
    [property: JsonPropertyName("algorithm")] string Algorithm);

/// <summary>The answer to <c>GET /public-key</c>.</summary>
internal sealed record PublicKeyResponse(
    [property: JsonPropertyName("public_key")] string PublicKey,
    [property: JsonPropertyName("algorithm")] string Algorithm,
    [property: JsonPropertyName("source")] string Source);

/// <summary>An error body.</summary>
internal sealed record ErrorResponse([property: JsonPropertyName("error")] string Error);

/// <summary>Source-generated JSON: no reflection at the first request, and NativeAOT-ready.</summary>
[JsonSerializable(typeof(SignResponse))]
[JsonSerializable(typeof(PublicKeyResponse))]
[JsonSerializable(typeof(ErrorResponse))]
internal sealed partial class SignerJson : JsonSerializerContext
{
    /// <summary>Writes base64 '+' as is rather than <c>\u002B</c>: the bodies are ASCII and never embedded in HTML.</summary>
    public static SignerJson Relaxed { get; } = new(new JsonSerializerOptions { Encoder = JavaScriptEncoder.UnsafeRelaxedJsonEscaping });
}
