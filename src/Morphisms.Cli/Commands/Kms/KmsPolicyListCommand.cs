using System.CommandLine;

namespace Morphisms.Cli.Commands.Kms;

/// <summary><c>morph kms policy list</c>: policy names, one per line.</summary>
public static class KmsPolicyListCommand
{
    /// <summary>Creates the command.</summary>
    public static Command Create(TextWriter stdout, TextWriter stderr)
    {
        var command = new Command("list", "List policy names.");
        KmsAction.Set(command, stdout, stderr, async (parse, kms, json, ct) =>
        {
            var reply = await kms.SendAsync("LIST", "sys/policies/acl", null, ct);
            await KmsListing.PrintAsync(stdout, reply, json);
            return ExitCodes.Ok;
        });
        return command;
    }
}
