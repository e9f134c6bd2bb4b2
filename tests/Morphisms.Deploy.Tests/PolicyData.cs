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
