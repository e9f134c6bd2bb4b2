using System.Text.Json;
using System.Text.Json.Nodes;

namespace Morphisms.Agent.Kms;

/// <summary>
/// Typed reads of KMS response fields. A field of the wrong JSON type is an <see cref="InvalidDataException"/> naming
/// it, like a missing one, so a malformed answer is reported as such instead of surfacing as a type error.
/// </summary>
internal static class KmsJson
{
    private static readonly JsonDocumentOptions Strict = new() { AllowDuplicateProperties = false };

    /// <summary>
    /// Parses a KMS answer and decodes every key and string in it at once. <see cref="JsonNode.Parse(string, JsonNodeOptions?, JsonDocumentOptions)"/>
    /// decodes lazily, so a lone surrogate escape (<c>{"\ud800":1}</c>) or a repeated key would otherwise throw
    /// <see cref="InvalidOperationException"/> or <see cref="ArgumentException"/> at whichever later read first touched
    /// it, past every handler of a malformed answer, and end the agent as an internal error.
    /// </summary>
    /// <exception cref="JsonException">Not JSON, a key repeated, or a key or string that does not decode.</exception>
    public static JsonNode? Parse(string text)
    {
        try
        {
            var node = JsonNode.Parse(text, documentOptions: Strict);
            Decode(node);
            return node;
        }
        catch (InvalidOperationException e)
        {
            throw new JsonException(e.Message, e);
        }
    }

    /// <summary>
    /// The object at <paramref name="node"/>, null when absent or JSON null. Read nested fields through this rather than
    /// <c>node?["name"]</c>: that indexer throws <see cref="InvalidOperationException"/> on an array or a value, which
    /// no handler of a malformed answer catches.
    /// </summary>
    public static JsonObject? OptionalObject(JsonNode? node, string field) => node switch
    {
        null => null,
        JsonObject value => value,
        _ => throw new InvalidDataException($"{field} is not an object"),
    };

    /// <summary>The string at <paramref name="node"/>, null when absent or JSON null.</summary>
    public static string? OptionalString(JsonNode? node, string field) => node switch
    {
        null => null,
        JsonValue value when value.GetValueKind() == JsonValueKind.String => value.GetValue<string>(),
        _ => throw new InvalidDataException($"{field} is not a string"),
    };

    /// <summary>The integer at <paramref name="node"/>, null when absent or JSON null.</summary>
    public static long? OptionalInteger(JsonNode? node, string field) => node switch
    {
        null => null,
        JsonValue value when value.GetValueKind() == JsonValueKind.Number && value.TryGetValue<long>(out var number) => number,
        _ => throw new InvalidDataException($"{field} is not an integer"),
    };

    /// <summary>The boolean at <paramref name="node"/>, null when absent or JSON null.</summary>
    public static bool? OptionalBoolean(JsonNode? node, string field) => node switch
    {
        null => null,
        JsonValue value when value.GetValueKind() is JsonValueKind.True or JsonValueKind.False => value.GetValue<bool>(),
        _ => throw new InvalidDataException($"{field} is not a boolean"),
    };

    private static void Decode(JsonNode? node)
    {
        switch (node)
        {
            case JsonObject value:
                foreach (var (_, item) in value)
                {
                    Decode(item);
                }

                break;
            case JsonArray value:
                foreach (var item in value)
                {
                    Decode(item);
                }

                break;
            case JsonValue value when value.GetValueKind() == JsonValueKind.String:
                _ = value.GetValue<string>();
                break;
        }
    }
}
