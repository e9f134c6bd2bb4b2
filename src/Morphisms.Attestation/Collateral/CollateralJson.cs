using System.Globalization;
using System.Text.Json;
using System.Text.Unicode;

namespace Morphisms.Attestation.Collateral;

/// <summary>
/// Strict readers for Intel's collateral JSON. Every error names the JSON path of the offending
/// field, so a user can see which part of a file is wrong.
/// </summary>
internal static class CollateralJson
{
    /// <summary>
    /// Duplicate keys are refused: the signature covers the bytes, and two parsers that resolve a
    /// duplicate differently could read different values from the same signed document.
    /// </summary>
    public static readonly JsonDocumentOptions Options = new()
    {
        AllowDuplicateProperties = false,
        CommentHandling = JsonCommentHandling.Disallow,
        AllowTrailingCommas = false,
        MaxDepth = 32,
    };

    public static JsonDocument Parse(ReadOnlyMemory<byte> utf8, string what)
    {
        // JsonDocument checks the UTF-8 of strings only when one is read, and then throws InvalidOperationException.
        var json = StripBom(utf8);
        if (!Utf8.IsValid(json.Span))
        {
            throw new EvidenceFormatException(what, "malformed JSON (not valid UTF-8)");
        }

        try
        {
            return JsonDocument.Parse(json, Options);
        }
        catch (JsonException e)
        {
            throw new EvidenceFormatException(what, $"malformed JSON ({e.Message})");
        }
    }

    public static ReadOnlyMemory<byte> StripBom(ReadOnlyMemory<byte> utf8) =>
        utf8.Span.StartsWith((ReadOnlySpan<byte>)[0xEF, 0xBB, 0xBF]) ? utf8[3..] : utf8;

    public static JsonElement RequireObject(JsonElement element, string path)
    {
        if (element.ValueKind != JsonValueKind.Object)
        {
            throw new EvidenceFormatException(path, $"expected a JSON object, found {Describe(element)}");
        }

        return element;
    }

    public static JsonElement Property(JsonElement parent, string name, string path)
    {
        if (!parent.TryGetProperty(name, out var value) || value.ValueKind == JsonValueKind.Null)
        {
            throw new EvidenceFormatException(Join(path, name), "missing");
        }

        return value;
    }

    public static bool TryProperty(JsonElement parent, string name, out JsonElement value) =>
        parent.TryGetProperty(name, out value) && value.ValueKind != JsonValueKind.Null;

    public static string String(JsonElement parent, string name, string path)
    {
        var value = Property(parent, name, path);
        if (value.ValueKind != JsonValueKind.String)
        {
            throw new EvidenceFormatException(Join(path, name), $"expected a string, found {Describe(value)}");
        }

        return value.GetString()!;
    }

    public static long Integer(JsonElement parent, string name, string path, long min, long max)
    {
        var value = Property(parent, name, path);
        if (value.ValueKind != JsonValueKind.Number || !value.TryGetInt64(out var number))
        {
            throw new EvidenceFormatException(Join(path, name), $"expected an integer, found {Describe(value)}");
        }

        if (number < min || number > max)
        {
            throw new EvidenceFormatException(Join(path, name), $"{number} is outside [{min}, {max}]");
        }

        return number;
    }

    public static byte[] HexBytes(JsonElement parent, string name, string path, int length)
    {
        var text = String(parent, name, path);
        if (text.Length != length * 2)
        {
            throw new EvidenceFormatException(Join(path, name), $"expected {length * 2} hex digits, found {text.Length} characters");
        }

        try
        {
            return Convert.FromHexString(text);
        }
        catch (FormatException)
        {
            throw new EvidenceFormatException(Join(path, name), "not a hexadecimal string");
        }
    }

    public static DateTimeOffset Date(JsonElement parent, string name, string path)
    {
        var text = String(parent, name, path);

        // Intel writes ISO 8601 UTC ("2025-08-15T05:08:18Z"); a time without an offset is read as UTC
        // rather than as the verifier's local time, which would shift validity windows by hours.
        if (!DateTimeOffset.TryParse(text, CultureInfo.InvariantCulture,
                DateTimeStyles.AssumeUniversal | DateTimeStyles.AdjustToUniversal, out var date)
            || !text.Contains('T'))
        {
            throw new EvidenceFormatException(Join(path, name), $"'{text}' is not an ISO 8601 date-time");
        }

        return date;
    }

    public static JsonElement Array(JsonElement parent, string name, string path)
    {
        var value = Property(parent, name, path);
        if (value.ValueKind != JsonValueKind.Array)
        {
            throw new EvidenceFormatException(Join(path, name), $"expected an array, found {Describe(value)}");
        }

        return value;
    }

    public static IReadOnlyList<string> OptionalStrings(JsonElement parent, string name, string path)
    {
        if (!TryProperty(parent, name, out var value))
        {
            return [];
        }

        if (value.ValueKind != JsonValueKind.Array)
        {
            throw new EvidenceFormatException(Join(path, name), $"expected an array, found {Describe(value)}");
        }

        var list = new List<string>();
        var i = 0;
        foreach (var item in value.EnumerateArray())
        {
            if (item.ValueKind != JsonValueKind.String)
            {
                throw new EvidenceFormatException($"{Join(path, name)}[{i}]", $"expected a string, found {Describe(item)}");
            }

            list.Add(item.GetString()!);
            i++;
        }

        return list;
    }

    public static string Join(string path, string name) => path.Length == 0 ? name : $"{path}.{name}";

    private static string Describe(JsonElement element) => element.ValueKind switch
    {
        JsonValueKind.Object => "an object",
        JsonValueKind.Array => "an array",
        JsonValueKind.String => "a string",
        JsonValueKind.Number => "a number",
        JsonValueKind.True or JsonValueKind.False => "a boolean",
        _ => "null",
    };
}
