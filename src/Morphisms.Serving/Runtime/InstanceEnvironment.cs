using System.Collections;

namespace Morphisms.Serving.Runtime;

/// <summary>
/// The serving process's variables an instance inherits: only the ones that say where programs are and how to run
/// them (locale, time zone, the .NET runtime's knobs, the TLS trust store). Anything else the operator exported — a
/// KMS or Vault token, a cloud credential — stays with the host; the spec's env and the agent's variables come on top.
/// </summary>
internal static class InstanceEnvironment
{
    private static readonly string[] Names = ["PATH", "HOME", "LANG", "LANGUAGE", "TZ", "TMPDIR", "SSL_CERT_FILE", "SSL_CERT_DIR"];

    private static readonly string[] Prefixes = ["LC_", "DOTNET_"];

    /// <summary>The variables of <paramref name="host"/> (the serving process's environment) an instance may inherit.</summary>
    public static IEnumerable<KeyValuePair<string, string>> Inherited(IDictionary host)
    {
        foreach (DictionaryEntry entry in host)
        {
            if (entry.Key is string name && entry.Value is string value && IsInherited(name))
            {
                yield return new(name, value);
            }
        }
    }

    /// <summary>Whether a variable of the serving process reaches instances.</summary>
    public static bool IsInherited(string name) =>
        Names.Contains(name, StringComparer.Ordinal) || Prefixes.Any(prefix => name.StartsWith(prefix, StringComparison.Ordinal));
}
