using System.CommandLine;
using System.Text.Json.Nodes;

namespace Morphisms.Cli.Commands.Kms;

/// <summary>
/// <c>morph kms kv undelete PATH --versions 1 2</c>: brings back versions soft-deleted by <c>morph kms kv delete</c>
/// (<c>MOUNT/undelete/KEY</c>). The versions are required, as for Vault's <c>kv undelete</c>: "the latest" would be a
/// version that is not deleted, or not the one meant.
/// </summary>
public static class KmsKvUndeleteCommand
{
    /// <summary>Creates the command.</summary>
    public static Command Create(TextWriter stdout, TextWriter stderr)
    {
        var path = new Argument<string>("path") { Description = "MOUNT/KEY, e.g. secret/app." };
        var versions = new Option<long[]>("--versions") { Description = "Versions to restore (see kv get --version).", Required = true, AllowMultipleArgumentsPerToken = true };
        var command = new Command("undelete", "Restore soft-deleted versions of a secret.") { path, versions };
        KmsAction.Set(command, stdout, stderr, async (parse, kms, json, ct) =>
        {
            var list = parse.GetValue(versions)!;
            var kv = await KvPath.ResolveAsync(kms, parse.GetValue(path)!, allowEmptyKey: false, ct);
            await kms.SendAsync("POST", kv.Api("undelete"), new JsonObject { ["versions"] = new JsonArray([.. list.Select(v => (JsonNode)v)]) }, ct);
            await stdout.WriteLineAsync(json
                ? new JsonObject { ["undeleted"] = kv.Mount + kv.Key, ["versions"] = new JsonArray([.. list.Select(v => (JsonNode)v)]) }.ToJsonString()
                : $"{kv.Mount}{kv.Key}: version{(list.Length > 1 ? "s" : string.Empty)} {string.Join(", ", list)} undeleted");
            return ExitCodes.Ok;
        });
        return command;
    }
}
