using System.CommandLine;
using System.Text.Json.Nodes;

namespace Morphisms.Cli.Commands.Serving;

/// <summary><c>morph rm FN</c>: remove a function: its route, its instances (drained) and its KMS registration.</summary>
public static class RmCommand
{
    /// <summary>Creates the command.</summary>
    public static Command Create(TextWriter stdout, TextWriter stderr)
    {
        var function = new Argument<string>("function") { Description = "The function." };
        var command = new Command("rm", "Remove a function: route, instances (drained) and its KMS function registration.") { function };
        ServingControl.Set(command, stdout, stderr, async (parse, http, json, ct) =>
        {
            var name = parse.GetValue(function)!;
            var result = await ServingControl.SendAsync(http, HttpMethod.Delete, $"v1/functions/{Uri.EscapeDataString(name)}", null, ct);
            var kmsError = Text(result?["kms_error"]);
            var kmsNote = Text(result?["kms_note"]);
            if (json)
            {
                await ServingControl.PrintJsonAsync(stdout, result);
            }
            else if (kmsError is null)
            {
                await stdout.WriteLineAsync(kmsNote is null ? $"removed {name}" : $"removed {name}; {kmsNote}");
            }

            if (kmsError is not null)
            {
                // The host is rid of it, but the registration still lets the function's code log in wherever it runs:
                // not the "removed" the user asked for, and the host will not retry (the function is gone from it).
                await stderr.WriteLineAsync(
                    $"morph: {name} was removed from the serving host, but its KMS registration was not deleted ({kmsError}); "
                    + $"its code can still log in to the KMS. Delete it once the KMS answers (unsealed, reachable, a token allowed to): morph kms function delete {name}");
                return ExitCodes.Rejected;
            }

            return ExitCodes.Ok;
        });
        return command;
    }

    private static string? Text(JsonNode? node) =>
        node is JsonValue value && value.TryGetValue<string>(out var text) && text.Length > 0 ? text : null;
}
