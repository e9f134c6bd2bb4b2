using System.CommandLine;
using System.Text.Json.Nodes;

namespace Morphisms.Cli.Commands.Kms;

/// <summary><c>morph kms status</c>: the seal status. Exit 0 when the KMS is unsealed, 1 when sealed or not initialised.</summary>
public static class KmsStatusCommand
{
    /// <summary>Creates the command.</summary>
    public static Command Create(TextWriter stdout, TextWriter stderr)
    {
        var command = new Command("status", "Show whether the KMS is initialised and sealed (exit 1 unless unsealed).");
        KmsAction.Set(command, stdout, stderr, async (parse, kms, json, ct) =>
        {
            var status = (await kms.SendAsync("GET", "sys/seal-status", null, ct, authenticated: false)).Body ?? [];
            if (json)
            {
                await KmsAction.PrintJsonAsync(stdout, status);
            }
            else
            {
                await PrintAsync(stdout, status);
            }

            return status["initialized"]?.GetValue<bool>() == true && status["sealed"]?.GetValue<bool>() == false ? ExitCodes.Ok : ExitCodes.Rejected;
        }, needsToken: false);
        return command;
    }

    /// <summary>Prints a seal-status object for humans.</summary>
    internal static Task PrintAsync(TextWriter stdout, JsonObject status) => KmsAction.PrintFieldsAsync(stdout, new JsonObject
    {
        ["initialized"] = status["initialized"]?.ToString(),
        ["sealed"] = status["sealed"]?.ToString(),
        ["shares"] = status["n"]?.ToString(),
        ["threshold"] = status["t"]?.ToString(),
        ["unseal progress"] = $"{status["progress"]}/{status["t"]}",
        ["version"] = status["version"]?.ToString(),
        ["storage"] = status["storage_type"]?.ToString(),
        ["cluster"] = status["cluster_name"]?.ToString(),
    });
}
