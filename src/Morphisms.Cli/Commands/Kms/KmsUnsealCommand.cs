using System.CommandLine;
using System.Text.Json.Nodes;

namespace Morphisms.Cli.Commands.Kms;

/// <summary>
/// <c>morph kms unseal</c>: submits unseal key shares, one per line, from <c>--key-file</c> or standard input (never
/// from the command line), until the KMS is unsealed. Exit 0 when unsealed, 1 when more shares are needed.
/// </summary>
public static class KmsUnsealCommand
{
    /// <summary>Creates the command.</summary>
    public static Command Create(TextWriter stdout, TextWriter stderr)
    {
        var keyFile = new Option<string?>("--key-file") { Description = "File with unseal key shares, one per line (hex or base64); '-' or absent: standard input." };
        var reset = new Option<bool>("--reset") { Description = "Discard the shares submitted so far instead." };
        var command = new Command("unseal", "Submit unseal key shares until the KMS is unsealed.") { keyFile, reset };
        KmsAction.Set(command, stdout, stderr, async (parse, kms, json, ct) =>
        {
            JsonObject? status;
            if (parse.GetValue(reset))
            {
                status = (await kms.SendAsync("PUT", "sys/unseal", new JsonObject { ["reset"] = true }, ct, authenticated: false)).Body;
            }
            else
            {
                var keys = SecretInput.Lines(SecretInput.Read(parse.GetValue(keyFile), "--key-file", BoundedInput.SecretLimit));
                if (keys.Count == 0)
                {
                    throw KmsCliException.Usage("no unseal key shares given: one per line on standard input or in --key-file");
                }

                status = null;
                foreach (var key in keys)
                {
                    status = (await kms.SendAsync("PUT", "sys/unseal", new JsonObject { ["key"] = key }, ct, authenticated: false)).Body;
                    if (status?["sealed"]?.GetValue<bool>() == false)
                    {
                        break;
                    }
                }
            }

            status ??= [];
            if (json)
            {
                await KmsAction.PrintJsonAsync(stdout, status);
            }
            else
            {
                await KmsStatusCommand.PrintAsync(stdout, status);
            }

            return status["sealed"]?.GetValue<bool>() == false ? ExitCodes.Ok : ExitCodes.Rejected;
        }, needsToken: false);
        return command;
    }
}
