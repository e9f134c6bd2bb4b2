using System.CommandLine;
using System.Text.Json.Nodes;

namespace Morphisms.Cli.Commands.Kms;

/// <summary>
/// <c>morph kms function delete NAME</c>: removes a registration; its instances can no longer log in. A function
/// whose owners approve its updates leaves a tombstone, and the output says so: registering other code under the
/// name needs their approval.
/// </summary>
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
            var reply = await kms.SendAsync("DELETE", "morphisms/functions/" + Uri.EscapeDataString(functionName), null, ct);
            var tombstone = reply.Data["tombstone"] is JsonValue kept && kept.TryGetValue<bool>(out var isTombstone) && isTombstone;
            if (json)
            {
                await stdout.WriteLineAsync(new JsonObject { ["deleted"] = functionName, ["tombstone"] = tombstone }.ToJsonString());
            }
            else if (tombstone)
            {
                await stdout.WriteLineAsync($"function {functionName} deleted; its name stays with its owners ({KmsAction.Text(reply.Data["owners"])}): "
                    + $"registering it again with other reference values, owners, threshold or secret path needs {reply.Data["approvals_required"]} of them to approve");
            }
            else
            {
                await stdout.WriteLineAsync($"function {functionName} deleted");
            }

            return ExitCodes.Ok;
        });
        return command;
    }
}
