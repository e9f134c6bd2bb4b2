using System.CommandLine;

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
            var result = await ServingControl.SendAsync(http, HttpMethod.Delete, $"v1/functions/{Uri.EscapeDataString(parse.GetValue(function)!)}", null, ct);
            if (json)
            {
                await ServingControl.PrintJsonAsync(stdout, result);
            }
            else
            {
                await stdout.WriteLineAsync($"removed {parse.GetValue(function)}");
            }

            return ExitCodes.Ok;
        });
        return command;
    }
}
