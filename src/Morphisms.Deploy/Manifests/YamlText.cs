using System.Globalization;
using System.Text;
using System.Text.Json;

namespace Morphisms.Deploy.Manifests;

/// <summary>
/// A minimal YAML writer for generated manifests: maps (<see cref="OrderedDictionary{TKey, TValue}"/>), lists, strings,
/// integers and booleans. Every string is double-quoted with JSON escaping (valid YAML), so values such as
/// <c>"1"</c> in annotations stay strings and nothing a user writes can change the document's structure.
/// </summary>
public static class YamlText
{
    /// <summary>Writes <paramref name="document"/> as one YAML document.</summary>
    public static string Write(OrderedDictionary<string, object?> document)
    {
        var text = new StringBuilder();
        WriteMap(text, document, 0);
        return text.ToString();
    }

    private static void WriteMap(StringBuilder text, OrderedDictionary<string, object?> map, int indent)
    {
        foreach (var (key, value) in map)
        {
            if (value is null)
            {
                continue;
            }

            text.Append(' ', indent).Append(Key(key)).Append(':');
            WriteValue(text, value, indent);
        }
    }

    private static void WriteValue(StringBuilder text, object value, int indent)
    {
        switch (value)
        {
            case OrderedDictionary<string, object?> { Count: 0 }:
                text.Append(" {}\n");
                break;
            case OrderedDictionary<string, object?> map:
                text.Append('\n');
                WriteMap(text, map, indent + 2);
                break;
            case System.Collections.IEnumerable list and not string:
                var items = list.Cast<object>().ToList();
                if (items.Count == 0)
                {
                    text.Append(" []\n");
                    break;
                }

                text.Append('\n');
                foreach (var item in items)
                {
                    text.Append(' ', indent).Append("- ");
                    if (item is OrderedDictionary<string, object?> itemMap)
                    {
                        // The first key shares the dash's line; the rest align under it.
                        var nested = new StringBuilder();
                        WriteMap(nested, itemMap, indent + 2);
                        text.Append(nested.ToString().TrimStart(' '));
                    }
                    else
                    {
                        text.Append(Scalar(item)).Append('\n');
                    }
                }

                break;
            default:
                text.Append(' ').Append(Scalar(value)).Append('\n');
                break;
        }
    }

    private static string Scalar(object value) => value switch
    {
        string s => JsonSerializer.Serialize(s),
        bool b => b ? "true" : "false",
        int or long => Convert.ToString(value, CultureInfo.InvariantCulture)!,
        _ => throw new ArgumentException($"unsupported YAML value {value.GetType().Name}"),
    };

    // Keys are ours (field names, annotation keys); quote anything beyond the plain-safe set anyway.
    private static string Key(string key) =>
        key.Length > 0 && key.All(c => char.IsAsciiLetterOrDigit(c) || c is '.' or '/' or '-' or '_') ? key : JsonSerializer.Serialize(key);
}
