using System.Globalization;
using System.Text.Json;
using System.Text.Json.Nodes;

namespace Morphisms.Kms.Http;

/// <summary>
/// Typed access to a request's parameters with Vault's weak decoding (<c>"5"</c> is an int, <c>"true"</c> a
/// bool, <c>"1h"</c> or <c>3600</c> a duration, <c>"a,b"</c> a list). A wrong type is a 400 that names the field.
/// </summary>
internal sealed class Fields(JsonObject data)
{
    private readonly HashSet<string> _seen = new(StringComparer.Ordinal);

    /// <summary>The raw parameters.</summary>
    public JsonObject Data => data;

    /// <summary>Parameters no handler asked for, reported back as a warning as Vault does.</summary>
    public IEnumerable<string> Unused => data.Select(p => p.Key).Where(k => !_seen.Contains(k));

    /// <summary>Whether the parameter is present and not null.</summary>
    public bool Has(string name)
    {
        _seen.Add(name);
        return data[name] is not null;
    }

    /// <summary>
    /// Whether the parameter is present with a value: not null, <c>""</c> or <c>[]</c>. Clients send those for
    /// "unset" (Go's encoder writes a field without omitempty as <c>""</c>), and Vault reads them as not given, so
    /// a parameter the KMS does not support is refused only when this is true.
    /// </summary>
    public bool HasValue(string name) => Get(name) switch
    {
        null => false,
        JsonValue v when v.GetValueKind() == JsonValueKind.String => v.GetValue<string>().Length > 0,
        JsonArray a => a.Count > 0,
        _ => true,
    };

    /// <summary>A string parameter; numbers and booleans are accepted as their text.</summary>
    public string? String(string name)
    {
        var node = Get(name);
        if (node is null)
        {
            return null;
        }

        if (node is JsonValue v)
        {
            switch (v.GetValueKind())
            {
                case JsonValueKind.String:
                    return v.GetValue<string>();
                case JsonValueKind.Number:
                case JsonValueKind.True:
                case JsonValueKind.False:
                    return v.ToJsonString();
            }
        }

        throw Invalid(name, "a string");
    }

    /// <summary>A required non-empty string parameter.</summary>
    public string RequiredString(string name)
    {
        var s = String(name);
        return string.IsNullOrEmpty(s) ? throw KmsException.BadRequest($"missing required parameter '{name}'") : s;
    }

    /// <summary>A boolean parameter.</summary>
    public bool? Bool(string name)
    {
        var node = Get(name);
        if (node is null)
        {
            return null;
        }

        if (node is JsonValue v)
        {
            switch (v.GetValueKind())
            {
                case JsonValueKind.True:
                    return true;
                case JsonValueKind.False:
                    return false;
                case JsonValueKind.String:
                    var s = v.GetValue<string>().Trim().ToLowerInvariant();
                    if (s is "true" or "1" or "t")
                    {
                        return true;
                    }

                    if (s is "false" or "0" or "f" or "")
                    {
                        return false;
                    }

                    break;
                case JsonValueKind.Number when v.TryGetValue<long>(out var n) && n is 0 or 1:
                    return n == 1;
            }
        }

        throw Invalid(name, "a boolean");
    }

    /// <summary>An integer parameter.</summary>
    public long? Int(string name)
    {
        var node = Get(name);
        return node is null ? null : ParseInt(node) ?? throw Invalid(name, "an integer");
    }

    /// <summary>A non-negative integer parameter within <paramref name="max"/>.</summary>
    public long? NonNegativeInt(string name, long max = int.MaxValue)
    {
        var n = Int(name);
        return n is null ? null : n < 0 || n > max ? throw Invalid(name, $"an integer between 0 and {max}") : n;
    }

    /// <summary>A duration parameter (seconds or a duration string).</summary>
    public TimeSpan? Duration(string name)
    {
        var node = Get(name);
        if (node is null)
        {
            return null;
        }

        if (node is JsonValue v)
        {
            if (v.GetValueKind() == JsonValueKind.Number && v.TryGetValue<long>(out var seconds) && Durations.TryFromSeconds(seconds, out var fromSeconds))
            {
                return fromSeconds;
            }

            if (v.GetValueKind() == JsonValueKind.String && Durations.TryParse(v.GetValue<string>(), out var parsed))
            {
                return parsed;
            }
        }

        throw Invalid(name, "a duration such as 3600, \"60s\" or \"1h\"");
    }

    /// <summary>
    /// A duration parameter where zero means "not given", as Vault reads a <c>ttl</c> of <c>0</c> or <c>""</c>: the
    /// default applies, not a lifetime of nothing.
    /// </summary>
    public TimeSpan? DurationUnlessZero(string name) => Duration(name) is { } value && value > TimeSpan.Zero ? value : null;

    /// <summary>A list of strings (a JSON array of strings, or one comma-separated string).</summary>
    public List<string>? StringList(string name)
    {
        var node = Get(name);
        switch (node)
        {
            case null:
                return null;
            case JsonArray array:
                var list = new List<string>(array.Count);
                foreach (var item in array)
                {
                    if (item is JsonValue iv && iv.GetValueKind() == JsonValueKind.String)
                    {
                        list.Add(iv.GetValue<string>());
                    }
                    else
                    {
                        throw Invalid(name, "a list of strings");
                    }
                }

                return list;
            case JsonValue v when v.GetValueKind() == JsonValueKind.String:
                return [.. v.GetValue<string>().Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries)];
            default:
                throw Invalid(name, "a list of strings");
        }
    }

    /// <summary>A list of integers (a JSON array, or one comma-separated string).</summary>
    public List<long>? IntList(string name)
    {
        var node = Get(name);
        switch (node)
        {
            case null:
                return null;
            case JsonArray array:
                return [.. array.Select(item => item is null ? null : ParseInt(item)).Select(n => n ?? throw Invalid(name, "a list of integers"))];
            case JsonValue v when v.GetValueKind() == JsonValueKind.String:
                return [.. v.GetValue<string>().Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries)
                    .Select(s => long.TryParse(s, NumberStyles.AllowLeadingSign, CultureInfo.InvariantCulture, out var n) ? n : throw Invalid(name, "a list of integers"))];
            case JsonValue v when ParseInt(v) is { } single:
                return [single];
            default:
                throw Invalid(name, "a list of integers");
        }
    }

    /// <summary>A map of string to string.</summary>
    public Dictionary<string, string>? StringMap(string name)
    {
        var node = Get(name);
        if (node is null)
        {
            return null;
        }

        if (node is not JsonObject obj)
        {
            throw Invalid(name, "a map of strings");
        }

        var map = new Dictionary<string, string>(StringComparer.Ordinal);
        foreach (var (key, value) in obj)
        {
            if (value is JsonValue v && v.GetValueKind() == JsonValueKind.String)
            {
                map[key] = v.GetValue<string>();
            }
            else
            {
                throw Invalid(name, "a map of strings");
            }
        }

        return map;
    }

    /// <summary>An object parameter.</summary>
    public JsonObject? Object(string name)
    {
        var node = Get(name);
        return node switch
        {
            null => null,
            JsonObject obj => obj,
            _ => throw Invalid(name, "an object"),
        };
    }

    private JsonNode? Get(string name)
    {
        _seen.Add(name);
        return data[name];
    }

    private static long? ParseInt(JsonNode node)
    {
        if (node is not JsonValue v)
        {
            return null;
        }

        return v.GetValueKind() switch
        {
            JsonValueKind.Number when v.TryGetValue<long>(out var n) => n,
            JsonValueKind.Number when v.TryGetValue<double>(out var d) && d == Math.Floor(d) && Math.Abs(d) < 9e15 => (long)d,
            JsonValueKind.String when long.TryParse(v.GetValue<string>().Trim(), NumberStyles.AllowLeadingSign, CultureInfo.InvariantCulture, out var s) => s,
            _ => null,
        };
    }

    private static KmsException Invalid(string name, string expected) =>
        KmsException.BadRequest($"invalid value for parameter '{name}': expected {expected}");
}
