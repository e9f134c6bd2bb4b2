using System.Text.Json.Nodes;

namespace Morphisms.Kms.Http;

/// <summary>Small builders for response JSON.</summary>
internal static class JsonValues
{
    /// <summary>A JSON array of strings.</summary>
    public static JsonArray Strings(IEnumerable<string> items) => new([.. items.Select(i => (JsonNode)i)]);

    /// <summary>A JSON object of string values.</summary>
    public static JsonObject StringMap(IEnumerable<KeyValuePair<string, string>> items) =>
        new([.. items.Select(p => new KeyValuePair<string, JsonNode?>(p.Key, p.Value))]);
}
