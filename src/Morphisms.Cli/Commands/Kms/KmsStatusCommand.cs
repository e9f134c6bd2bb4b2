using System.CommandLine;
using System.Text.Json.Nodes;

namespace Morphisms.Cli.Commands.Kms;

/// <summary>
/// <c>morph kms status</c>: the seal status and, on a node sharing PostgreSQL with others, whether it is the active node.
/// Exit 0 when the KMS is unsealed, 1 when sealed or not initialised.
/// </summary>
public static class KmsStatusCommand
{
    /// <summary>Creates the command.</summary>
    public static Command Create(TextWriter stdout, TextWriter stderr)
    {
        var command = new Command("status", "Show whether the KMS is initialised and sealed (exit 1 unless unsealed).");
        KmsAction.Set(command, stdout, stderr, async (parse, kms, json, ct) =>
        {
            var status = (await kms.SendAsync("GET", "sys/seal-status", null, ct, authenticated: false)).Body ?? [];
            // A sealed or uninitialised node answers sys/leader with 503 (as Vault does): it takes no part in HA, and the
            // seal status above is still the answer.
            var ha = HighAvailability((await kms.SendAsync("GET", "sys/leader", null, ct, authenticated: false, 503)).Body);
            if (json)
            {
                if (ha is not null)
                {
                    status["ha"] = ha;
                }

                await KmsAction.PrintJsonAsync(stdout, status);
            }
            else
            {
                await PrintAsync(stdout, status);
                if (ha is not null)
                {
                    await KmsAction.PrintFieldsAsync(stdout, new JsonObject { ["ha mode"] = ha["mode"]?.DeepClone(), ["active node"] = ha["active_node"]?.DeepClone() });
                }
            }

            return status["initialized"]?.GetValue<bool>() == true && status["sealed"]?.GetValue<bool>() == false ? ExitCodes.Ok : ExitCodes.Rejected;
        }, needsToken: false);
        return command;
    }

    /// <summary>
    /// The node's role when it shares PostgreSQL storage with others (<c>sys/leader</c> says <c>ha_enabled</c>), else null:
    /// <c>mode</c> active, standby (or sealed: it takes no part until unsealed) and the active node's address.
    /// </summary>
    internal static JsonObject? HighAvailability(JsonObject? leader)
    {
        if (leader?["ha_enabled"]?.GetValue<bool>() != true)
        {
            return null;
        }

        var self = leader["is_self"]?.GetValue<bool>() == true;
        var address = leader["leader_address"]?.GetValue<string>() ?? "";
        return new JsonObject
        {
            ["mode"] = self ? "active" : "standby",
            ["active_node"] = address.Length > 0 ? address : "(none known)",
        };
    }

    /// <summary>
    /// Prints a seal-status object for humans; an unsealed active KMS adds its root CA fingerprint, which the operator
    /// publishes for <c>morph kms trust --expect-root-ca</c>.
    /// </summary>
    internal static Task PrintAsync(TextWriter stdout, JsonObject status)
    {
        var fields = Fields(status);
        if (status["root_ca_sha256"] is { } rootCa)
        {
            fields["root ca sha256"] = rootCa.DeepClone();
        }

        return KmsAction.PrintFieldsAsync(stdout, fields);
    }

    private static JsonObject Fields(JsonObject status) => new()
    {
        ["initialized"] = status["initialized"]?.ToString(),
        ["sealed"] = status["sealed"]?.ToString(),
        ["shares"] = status["n"]?.ToString(),
        ["threshold"] = status["t"]?.ToString(),
        ["unseal progress"] = $"{status["progress"]}/{status["t"]}",
        ["version"] = status["version"]?.ToString(),
        ["storage"] = status["storage_type"]?.ToString(),
        ["cluster"] = status["cluster_name"]?.ToString(),
    };
}
