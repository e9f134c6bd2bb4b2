using System.CommandLine;
using System.Text.Json.Nodes;

namespace Morphisms.Cli.Commands.Kms;

/// <summary>
/// <c>morph kms kv delete PATH [--versions 1 2]</c>: soft-deletes the latest (or the given) versions, which
/// <c>morph kms kv undelete</c> restores.
/// </summary>
public static class KmsKvDeleteCommand
{
    /// <summary>Creates the command.</summary>
    public static Command Create(TextWriter stdout, TextWriter stderr)
    {
        var path = new Argument<string>("path") { Description = "MOUNT/KEY, e.g. secret/app." };
        var versions = new Option<long[]>("--versions") { Description = "Versions to delete (default: the latest).", AllowMultipleArgumentsPerToken = true };
        var command = new Command("delete", "Soft-delete a secret's latest version (or the given ones); morph kms kv undelete --versions brings them back.") { path, versions };
        KmsAction.Set(command, stdout, stderr, async (parse, kms, json, ct) =>
        {
            var kv = await KvPath.ResolveAsync(kms, parse.GetValue(path)!, allowEmptyKey: false, ct);
            if (parse.GetValue(versions) is { Length: > 0 } list)
            {
                await kms.SendAsync("POST", kv.Api("delete"), new JsonObject { ["versions"] = new JsonArray([.. list.Select(v => (JsonNode)v)]) }, ct);
            }
            else
            {
                await kms.SendAsync("DELETE", kv.Api("data"), null, ct);
            }

            await stdout.WriteLineAsync(json ? new JsonObject { ["deleted"] = kv.Mount + kv.Key }.ToJsonString() : $"{kv.Mount}{kv.Key}: deleted");
            return ExitCodes.Ok;
        });
        return command;
    }
}
