using System.Text.Json;
using System.Text.Json.Nodes;

namespace Morphisms.Agent.Kms;

/// <summary>
/// Typed reads of KMS response fields. A field of the wrong JSON type is an <see cref="InvalidDataException"/> naming
/// it, like a missing one, so a malformed answer is reported as such instead of surfacing as a type error.
/// </summary>
internal static class KmsJson
{
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
}
