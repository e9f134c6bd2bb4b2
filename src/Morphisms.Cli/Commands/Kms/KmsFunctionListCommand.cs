using System.CommandLine;

namespace Morphisms.Cli.Commands.Kms;

/// <summary><c>morph kms function list</c>: registered function names.</summary>
public static class KmsFunctionListCommand
{
    /// <summary>Creates the command.</summary>
    public static Command Create(TextWriter stdout, TextWriter stderr)
    {
        var command = new Command("list", "List registered functions.");
        KmsAction.Set(command, stdout, stderr, async (parse, kms, json, ct) =>
        {
            var reply = await kms.SendAsync("LIST", "morphisms/functions", null, ct, true, 404);
            await KmsListing.PrintAsync(stdout, reply, json);
            return ExitCodes.Ok;
        });
        return command;
    }
}
