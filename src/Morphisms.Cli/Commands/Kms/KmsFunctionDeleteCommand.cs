using System.CommandLine;
using System.Text.Json.Nodes;

namespace Morphisms.Cli.Commands.Kms;

/// <summary><c>morph kms function delete NAME</c>: removes a registration; its instances can no longer log in.</summary>
public static class KmsFunctionDeleteCommand
{
    /// <summary>Creates the command.</summary>
    public static Command Create(TextWriter stdout, TextWriter stderr)
    {
        var name = new Argument<string>("name") { Description = "Function name." };
        var command = new Command("delete", "Delete a function's registration.") { name };
        KmsAction.Set(command, stdout, stderr, async (parse, kms, json, ct) =>
        {
            var functionName = parse.GetValue(name)!;
            await kms.SendAsync("DELETE", "morphisms/functions/" + Uri.EscapeDataString(functionName), null, ct);
            await stdout.WriteLineAsync(json ? new JsonObject { ["deleted"] = functionName }.ToJsonString() : $"function {functionName} deleted");
            return ExitCodes.Ok;
        });
        return command;
    }
}
