using System.Text;
using System.Text.Json.Nodes;

namespace Morphisms.Agent.Secrets;

/// <summary>
/// The function's secret bundle, a KV v2 secret shaped <c>{"env":{NAME:VALUE},"files":{NAME:TEXT|{"base64":B64}},"argv":[...]}</c>.
/// File names are plain relative names inside the secrets directory.
/// </summary>
/// <param name="Version">The KV version it came from.</param>
/// <param name="Env">Environment variables for the app.</param>
/// <param name="Files">File name → content.</param>
/// <param name="Argv">Arguments appended to the app's command line: not secret, since every local user reads /proc/PID/cmdline.</param>
public sealed record SecretBundle(int Version, IReadOnlyDictionary<string, string> Env, IReadOnlyDictionary<string, byte[]> Files, IReadOnlyList<string> Argv)
{
    /// <summary>Parses a bundle; errors name the field, never a value.</summary>
    public static SecretBundle Parse(int version, JsonObject data)
    {
        foreach (var key in data.Select(p => p.Key))
        {
            if (key is not ("env" or "files" or "argv"))
            {
                throw new InvalidDataException($"secret bundle: unknown key '{key}' (expected env, files, argv)");
            }
        }

        var env = new Dictionary<string, string>(StringComparer.Ordinal);
        foreach (var (name, value) in Object(data, "env"))
        {
            if (name.Length == 0 || name.Contains('=') || name.Contains('\0') || value is not JsonValue v || !v.TryGetValue<string>(out var text))
            {
                throw new InvalidDataException($"secret bundle: env entry '{Safe(name)}' must be a NAME without '=' mapped to a string");
            }

            env[name] = text;
        }

        var files = new Dictionary<string, byte[]>(StringComparer.Ordinal);
        foreach (var (name, value) in Object(data, "files"))
        {
            files[CheckFileName(name)] = value switch
            {
                JsonValue v when v.TryGetValue<string>(out var text) => Encoding.UTF8.GetBytes(text),
                JsonObject { Count: 1 } o when o["base64"] is JsonValue b && b.TryGetValue<string>(out var b64) => Base64(b64, name),
                _ => throw new InvalidDataException($"secret bundle: file '{Safe(name)}' must be a string or {{\"base64\": ...}}"),
            };
        }

        var argv = new List<string>();
        if (data["argv"] is { } argvNode)
        {
            foreach (var item in argvNode as JsonArray ?? throw new InvalidDataException("secret bundle: argv must be an array of strings"))
            {
                argv.Add(item is JsonValue v && v.TryGetValue<string>(out var s) ? s : throw new InvalidDataException("secret bundle: argv must be an array of strings"));
            }
        }

        return new SecretBundle(version, env, files, argv);
    }

    private static IEnumerable<KeyValuePair<string, JsonNode?>> Object(JsonObject data, string key) =>
        data[key] switch
        {
            null => [],
            JsonObject o => o,
            _ => throw new InvalidDataException($"secret bundle: {key} must be an object"),
        };

    private static byte[] Base64(string text, string name)
    {
        try
        {
            return Convert.FromBase64String(text);
        }
        catch (FormatException)
        {
            throw new InvalidDataException($"secret bundle: file '{Safe(name)}' is not valid base64");
        }
    }

    // Only plain names: a bundle must not be able to write outside the secrets directory or over the temp files.
    private static string CheckFileName(string name)
    {
        if (name.Length == 0 || name is "." or ".." || name.StartsWith('.') || name.IndexOfAny(['/', '\\', '\0']) >= 0)
        {
            throw new InvalidDataException($"secret bundle: file name '{Safe(name)}' must be a plain name (no '/', not starting with '.')");
        }

        // The file system's limit (NAME_MAX) is 255 bytes of the name as written, UTF-8, not 255 chars: a longer name
        // could never be written, and would fail every poll (secrets_not_applied) instead of being refused once.
        if (Encoding.UTF8.GetByteCount(name) is var bytes and > 255)
        {
            throw new InvalidDataException($"secret bundle: file name '{Safe(name)}' is {bytes} bytes in UTF-8; a name is at most 255 bytes");
        }

        return name;
    }

    private static string Safe(string name) => name.Length > 64 ? name[..64] + "…" : name;
}
