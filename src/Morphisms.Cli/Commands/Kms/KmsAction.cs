using System.CommandLine;
using System.Globalization;
using System.Text.Json;
using System.Text.Json.Nodes;

namespace Morphisms.Cli.Commands.Kms;

/// <summary>Runs a <c>morph kms</c> client command: connect, act, and turn failures into a message and an exit code.</summary>
internal static class KmsAction
{
    private static readonly JsonSerializerOptions Indented = new() { WriteIndented = true };

    /// <summary>Adds the connection options to <paramref name="command"/> and sets its action.</summary>
    public static void Set(Command command, TextWriter stdout, TextWriter stderr, Func<ParseResult, KmsHttp, bool, CancellationToken, Task<int>> action, bool needsToken = true)
    {
        var connection = new KmsConnection();
        connection.AddTo(command);
        command.SetAction(async (parse, ct) =>
        {
            var json = connection.Json(parse);
            try
            {
                using var kms = connection.Connect(parse, needsToken);
                return await action(parse, kms, json, ct);
            }
            catch (KmsCliException e)
            {
                if (json && e.Body is not null)
                {
                    await stdout.WriteLineAsync(e.Body);
                }

                await stderr.WriteLineAsync($"morph: {e.Message}");
                return e.ExitCode;
            }
            catch (InvalidOperationException e)
            {
                // A reply field of the wrong JSON type (JsonNode.GetValue and AsArray throw this): not a KMS this morph
                // understands. The message names the types, never a value, so no token or key is printed.
                await stderr.WriteLineAsync($"morph: the KMS's reply is not in the expected form: {e.Message}");
                return ExitCodes.Rejected;
            }
        });
    }

    /// <summary>Prints a JSON value, indented.</summary>
    public static Task PrintJsonAsync(TextWriter stdout, JsonNode? node) => stdout.WriteLineAsync(node?.ToJsonString(Indented) ?? "null");

    /// <summary>Prints an object's fields as aligned <c>key  value</c> lines (nested values as compact JSON).</summary>
    public static async Task PrintFieldsAsync(TextWriter stdout, JsonObject fields)
    {
        if (fields.Count == 0)
        {
            return;
        }

        var width = fields.Max(f => f.Key.Length) + 2;
        foreach (var (key, value) in fields)
        {
            await stdout.WriteLineAsync(key.PadRight(width) + Text(value));
        }
    }

    /// <summary>A value as a human reads it: strings bare, lists comma-separated, objects as JSON.</summary>
    public static string Text(JsonNode? value) => value switch
    {
        null => "n/a",
        JsonValue v when v.GetValueKind() == JsonValueKind.String => v.GetValue<string>(),
        JsonArray a when a.All(i => i is JsonValue iv && iv.GetValueKind() == JsonValueKind.String) => string.Join(", ", a.Select(i => i!.GetValue<string>())),
        _ => value.ToJsonString(),
    };

    /// <summary>A duration in seconds from the API, as Go prints it (<c>1h0m0s</c>).</summary>
    public static string Seconds(JsonNode? value)
    {
        if (value is not JsonValue v || !v.TryGetValue<long>(out var seconds))
        {
            return Text(value);
        }

        var (h, m, s) = (seconds / 3600, seconds % 3600 / 60, seconds % 60);
        return h > 0 ? string.Create(CultureInfo.InvariantCulture, $"{h}h{m}m{s}s")
            : m > 0 ? string.Create(CultureInfo.InvariantCulture, $"{m}m{s}s")
            : string.Create(CultureInfo.InvariantCulture, $"{s}s");
    }
}
