using System.CommandLine;
using System.Text.Json.Nodes;

namespace Morphisms.Cli.Commands.Serving;

/// <summary><c>morph logs FN</c>: the last lines of a function's instances (stdout, stderr) and of the runtime about them.</summary>
public static class LogsCommand
{
    /// <summary>Creates the command.</summary>
    public static Command Create(TextWriter stdout, TextWriter stderr)
    {
        var function = new Argument<string>("function") { Description = "The function." };
        var lines = new Option<int>("--lines", "-n") { Description = "How many lines.", DefaultValueFactory = _ => 200 };
        var command = new Command("logs", "Show the captured output of a function's instances (bounded per instance).") { function, lines };
        ServingControl.Set(command, stdout, stderr, async (parse, http, json, ct) =>
        {
            var list = await ServingControl.SendAsync(http, HttpMethod.Get, $"v1/functions/{Uri.EscapeDataString(parse.GetValue(function)!)}/logs?lines={parse.GetValue(lines)}", null, ct) as JsonArray ?? [];
            if (json)
            {
                await ServingControl.PrintJsonAsync(stdout, list);
                return ExitCodes.Ok;
            }

            foreach (var line in list)
            {
                await stdout.WriteLineAsync($"{line!["time"]} {line["source"]} {line["stream"]}: {line["text"]}");
            }

            return ExitCodes.Ok;
        });
        return command;
    }
}
