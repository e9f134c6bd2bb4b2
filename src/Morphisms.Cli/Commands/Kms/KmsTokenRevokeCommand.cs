using System.CommandLine;
using System.Text.Json.Nodes;

namespace Morphisms.Cli.Commands.Kms;

/// <summary><c>morph kms token revoke (--self | --accessor A | --stdin)</c>: revokes a token and its children.</summary>
public static class KmsTokenRevokeCommand
{
    /// <summary>Creates the command.</summary>
    public static Command Create(TextWriter stdout, TextWriter stderr)
    {
        var target = new TokenTarget();
        var self = new Option<bool>("--self") { Description = "Revoke the caller's own token." };
        var command = new Command("revoke", "Revoke a token and every token created from it.") { self };
        target.AddTo(command);
        KmsAction.Set(command, stdout, stderr, async (parse, kms, json, ct) =>
        {
            var (path, body) = target.Resolve(parse, "revoke");

            // Revoking is not undoable, so the caller's own token is only revoked when asked for by name.
            if (path.EndsWith("-self", StringComparison.Ordinal) != parse.GetValue(self))
            {
                throw KmsCliException.Usage("say which one token to revoke: --self, --accessor ACCESSOR or --stdin");
            }

            await kms.SendAsync("POST", path, body, ct);
            await stdout.WriteLineAsync(json ? new JsonObject { ["revoked"] = true }.ToJsonString() : "revoked");
            return ExitCodes.Ok;
        });
        return command;
    }
}
