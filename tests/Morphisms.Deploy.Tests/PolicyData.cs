using System.Text;
using System.Text.Json;
using Morphisms.Deploy.Knative;
using Tomlyn;
using Tomlyn.Model;

namespace Morphisms.Deploy.Tests;

/// <summary>Reads an exported initdata document back: its TOML, its agent policy and the policy's container data.</summary>
internal static class PolicyData
{
    private const string Marker = "morph_containers := ";

    /// <summary>The <c>policy.rego</c> entry, as a TOML parser reads it (so the document must be valid TOML).</summary>
    public static string Policy(string initdata) => Entry(initdata, Initdata.PolicyEntry);

    /// <summary>A <c>[data]</c> entry of an initdata document.</summary>
    public static string Entry(string initdata, string name) =>
        Assert.IsType<string>(Assert.IsType<TomlTable>(TomlSerializer.Deserialize<TomlTable>(initdata)!["data"])[name]);

    /// <summary>
    /// The text of every definition of <paramref name="head"/> (a rule or function name: <c>CopyFileRequest</c>,
    /// <c>morph_mount</c>) that contains <paramref name="containing"/>, each from its first line to its closing brace.
    /// </summary>
    public static string Rule(string policy, string head, string containing = "")
    {
        var rules = new List<string>();
        var lines = policy.Split('\n');
        for (var i = 0; i < lines.Length; i++)
        {
            if (!lines[i].StartsWith(head + " ", StringComparison.Ordinal) && !lines[i].StartsWith(head + "(", StringComparison.Ordinal))
            {
                continue;
            }

            var end = Array.FindIndex(lines, i, l => l == "}");
            var rule = string.Join('\n', lines[i..(end + 1)]);
            if (rule.Contains(containing, StringComparison.Ordinal))
            {
                rules.Add(rule);
            }
        }

        Assert.True(rules.Count > 0, $"the policy has no {head} containing '{containing}'");
        return string.Join("\n\n", rules);
    }

    /// <summary>The policy's <c>morph_containers</c> object: container name → what is pinned.</summary>
    public static JsonElement Containers(string initdata)
    {
        var policy = Policy(initdata);
        var at = policy.IndexOf(Marker, StringComparison.Ordinal);
        Assert.True(at > 0, "the policy has no morph_containers");
        var reader = new Utf8JsonReader(Encoding.UTF8.GetBytes(policy[(at + Marker.Length)..]));
        using var value = JsonDocument.ParseValue(ref reader);
        return value.RootElement.Clone();
    }
}
