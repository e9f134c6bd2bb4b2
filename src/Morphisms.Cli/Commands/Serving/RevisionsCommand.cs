using System.CommandLine;
using System.Text.Json.Nodes;

namespace Morphisms.Cli.Commands.Serving;

/// <summary><c>morph revisions FN</c>: a function's revisions, measurements and traffic.</summary>
public static class RevisionsCommand
{
    /// <summary>Creates the command.</summary>
    public static Command Create(TextWriter stdout, TextWriter stderr)
    {
        var function = new Argument<string>("function") { Description = "The function." };
        var command = new Command("revisions", "List a function's revisions with their measurements, traffic and instances.") { function };
        ServingControl.Set(command, stdout, stderr, async (parse, http, json, ct) =>
        {
            var list = await ServingControl.SendAsync(http, HttpMethod.Get, $"v1/functions/{Uri.EscapeDataString(parse.GetValue(function)!)}/revisions", null, ct) as JsonArray ?? [];
            if (json)
            {
                await ServingControl.PrintJsonAsync(stdout, list);
                return ExitCodes.Ok;
            }

            var rows = list.Select(r => (IReadOnlyList<string>)
            [
                r!["name"]!.ToString(), r["tee"]!.ToString(), $"{r["percent"]}%",
                r["tags"] is JsonArray { Count: > 0 } tags ? string.Join(',', tags.Select(t => t!.ToString())) : "-",
                r["ready"]!.ToString(), r["crashes"]!.ToString(), r["measurement"]!.ToString()[..16] + "…",
            ]).ToList();
            await ServingControl.PrintTableAsync(stdout, ["REVISION", "TEE", "TRAFFIC", "TAGS", "READY", "CRASHES", "MEASUREMENT"], rows);
            return ExitCodes.Ok;
        });
        return command;
    }
}
