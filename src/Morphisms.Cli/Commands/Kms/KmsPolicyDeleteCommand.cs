using System.CommandLine;
using System.Text.Json.Nodes;

namespace Morphisms.Cli.Commands.Kms;

/// <summary><c>morph kms policy delete NAME</c>.</summary>
public static class KmsPolicyDeleteCommand
{
    /// <summary>Creates the command.</summary>
    public static Command Create(TextWriter stdout, TextWriter stderr)
    {
        var name = new Argument<string>("name") { Description = "Policy name." };
        var command = new Command("delete", "Delete a policy.") { name };
        KmsAction.Set(command, stdout, stderr, async (parse, kms, json, ct) =>
        {
            var policyName = parse.GetValue(name)!;
            await kms.SendAsync("DELETE", "sys/policies/acl/" + Uri.EscapeDataString(policyName), null, ct);
            await stdout.WriteLineAsync(json ? new JsonObject { ["deleted"] = policyName }.ToJsonString() : $"policy {policyName} deleted");
            return ExitCodes.Ok;
        });
        return command;
    }
}
