using System.Globalization;
using System.Text.Json;
using System.Text.Json.Nodes;
using Morphisms.Kms.Http;

namespace Morphisms.Kms.Functions;

/// <summary>
/// Strict reading of a nested JSON object: exact types, exact hex lengths, no unknown keys. Unlike
/// <see cref="Fields"/> it does not coerce, because a reference value typed slightly wrong must be refused, not
/// guessed. Every error is a 400 naming the full parameter path (<c>snp.measurements[1]</c>).
/// </summary>
internal sealed class StrictObject(JsonObject obj, string path)
{
    /// <summary>Refuses keys outside <paramref name="known"/>.</summary>
    public void RejectUnknown(params string[] known)
    {
        foreach (var (key, _) in obj)
        {
            if (!known.Contains(key, StringComparer.Ordinal))
            {
                throw KmsException.BadRequest($"unknown parameter '{Name(key)}': expected one of {string.Join(", ", known)}");
            }
        }
    }

    /// <summary>Whether the key is present and not null.</summary>
    public bool Has(string key) => obj[key] is not null;

    /// <summary>A nested object, or null when absent.</summary>
    public StrictObject? Object(string key) => obj[key] switch
    {
        null => null,
        JsonObject o => new StrictObject(o, Name(key)),
        _ => throw Invalid(Name(key), "an object"),
    };

    /// <summary>A hex string of exactly <paramref name="bytes"/> bytes, returned lowercase; null when absent.</summary>
    public string? Hex(string key, int bytes) => obj[key] is null ? null : ParseHex(obj[key], Name(key), bytes);

    /// <summary>A non-empty, duplicate-free list of hex strings of <paramref name="bytes"/> bytes each; null when absent.</summary>
    public List<string>? HexList(string key, int bytes, int maxItems = 64)
    {
        if (obj[key] is null)
        {
            return null;
        }

        if (obj[key] is not JsonArray array || array.Count == 0 || array.Count > maxItems)
        {
            throw Invalid(Name(key), $"a list of 1-{maxItems} hex values of {bytes} bytes");
        }

        var list = new List<string>(array.Count);
        for (var i = 0; i < array.Count; i++)
        {
            var value = ParseHex(array[i], $"{Name(key)}[{i}]", bytes);
            if (list.Contains(value, StringComparer.Ordinal))
            {
                throw Invalid($"{Name(key)}[{i}]", "a value not already in the list");
            }

            list.Add(value);
        }

        return list;
    }

    /// <summary>A JSON boolean; null when absent.</summary>
    public bool? Bool(string key) => obj[key] switch
    {
        null => null,
        JsonValue v when v.GetValueKind() == JsonValueKind.True => true,
        JsonValue v when v.GetValueKind() == JsonValueKind.False => false,
        _ => throw Invalid(Name(key), "true or false"),
    };

    /// <summary>A JSON integer within [<paramref name="min"/>, <paramref name="max"/>]; null when absent.</summary>
    public long? Int(string key, long min, long max) => obj[key] switch
    {
        null => null,
        JsonValue v when v.GetValueKind() == JsonValueKind.Number && v.TryGetValue<long>(out var n) && n >= min && n <= max => n,
        _ => throw Invalid(Name(key), string.Create(CultureInfo.InvariantCulture, $"an integer from {min} to {max}")),
    };

    /// <summary>A list of strings each allowed by <paramref name="allowed"/>; null when absent.</summary>
    public List<string>? OneOf(string key, IReadOnlyCollection<string> allowed)
    {
        if (obj[key] is null)
        {
            return null;
        }

        if (obj[key] is not JsonArray array || array.Count == 0)
        {
            throw Invalid(Name(key), $"a non-empty list of: {string.Join(", ", allowed)}");
        }

        var list = new List<string>();
        for (var i = 0; i < array.Count; i++)
        {
            var match = array[i] is JsonValue v && v.GetValueKind() == JsonValueKind.String
                ? allowed.FirstOrDefault(a => string.Equals(a, v.GetValue<string>(), StringComparison.OrdinalIgnoreCase))
                : null;
            if (match is null)
            {
                throw Invalid($"{Name(key)}[{i}]", $"one of: {string.Join(", ", allowed)}");
            }

            if (!list.Contains(match, StringComparer.Ordinal))
            {
                list.Add(match);
            }
        }

        return list;
    }

    /// <summary>A 400 for <paramref name="name"/> expecting <paramref name="expected"/>.</summary>
    public static KmsException Invalid(string name, string expected) =>
        KmsException.BadRequest($"invalid value for parameter '{name}': expected {expected}");

    private string Name(string key) => path.Length == 0 ? key : path + "." + key;

    private static string ParseHex(JsonNode? node, string name, int bytes)
    {
        var expected = string.Create(CultureInfo.InvariantCulture, $"{bytes} bytes as {bytes * 2} hex digits");
        if (node is not JsonValue v || v.GetValueKind() != JsonValueKind.String)
        {
            throw Invalid(name, expected);
        }

        var text = v.GetValue<string>();
        if (text.Length != bytes * 2 || !text.All(char.IsAsciiHexDigit))
        {
            throw Invalid(name, expected);
        }

        return text.ToLowerInvariant();
    }
}
