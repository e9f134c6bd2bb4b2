using System.CommandLine;

namespace Morphisms.Cli.Commands.Kms;

/// <summary><c>morph kms kv list PATH</c>: the keys under a folder (a trailing <c>/</c> marks sub-folders).</summary>
public static class KmsKvListCommand
{
    /// <summary>Creates the command.</summary>
    public static Command Create(TextWriter stdout, TextWriter stderr)
    {
        var path = new Argument<string>("path") { Description = "MOUNT or MOUNT/FOLDER, e.g. secret or secret/app." };
        var command = new Command("list", "List the keys under a path.") { path };
        KmsAction.Set(command, stdout, stderr, async (parse, kms, json, ct) =>
        {
            var kv = await KvPath.ResolveAsync(kms, parse.GetValue(path)!, allowEmptyKey: true, ct);
            var reply = await kms.SendAsync("LIST", kv.Key.Length == 0 ? kv.Mount + "metadata/" : kv.Api("metadata") + "/", null, ct, true, 404);
            await KmsListing.PrintAsync(stdout, reply, json);
            return ExitCodes.Ok;
        });
        return command;
    }
}
