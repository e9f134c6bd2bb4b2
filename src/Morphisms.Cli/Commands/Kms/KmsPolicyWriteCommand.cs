using System.CommandLine;
using System.Text.Json.Nodes;

namespace Morphisms.Cli.Commands.Kms;

/// <summary><c>morph kms policy write NAME FILE</c>: creates or replaces a policy from an HCL or JSON file (<c>-</c>: standard input).</summary>
public static class KmsPolicyWriteCommand
{
    /// <summary>Creates the command.</summary>
    public static Command Create(TextWriter stdout, TextWriter stderr)
    {
        var name = new Argument<string>("name") { Description = "Policy name." };
        var file = new Argument<string>("file") { Description = "Policy file (HCL or JSON); '-' reads standard input." };
        var command = new Command("write", "Create or replace a policy.") { name, file };
        KmsAction.Set(command, stdout, stderr, async (parse, kms, json, ct) =>
        {
            var policyName = parse.GetValue(name)!;
            var text = SecretInput.Read(parse.GetValue(file), "file");
            await kms.SendAsync("PUT", "sys/policies/acl/" + Uri.EscapeDataString(policyName), new JsonObject { ["policy"] = text }, ct);
            await stdout.WriteLineAsync(json ? new JsonObject { ["name"] = policyName, ["written"] = true }.ToJsonString() : $"policy {policyName} written");
            return ExitCodes.Ok;
        });
        return command;
    }
}
