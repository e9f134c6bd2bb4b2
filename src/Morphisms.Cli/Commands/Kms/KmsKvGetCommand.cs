using System.CommandLine;
using System.Text.Json.Nodes;

namespace Morphisms.Cli.Commands.Kms;

/// <summary><c>morph kms kv get PATH [--version N] [--field F]</c>: prints a secret's fields (or one field's raw value).</summary>
public static class KmsKvGetCommand
{
    /// <summary>Creates the command.</summary>
    public static Command Create(TextWriter stdout, TextWriter stderr)
    {
        var path = new Argument<string>("path") { Description = "MOUNT/KEY, e.g. secret/app." };
        var version = new Option<long?>("--version") { Description = "Read this version (default: the latest)." };
        var field = new Option<string?>("--field") { Description = "Print only this field's value." };
        var command = new Command("get", "Read a secret.") { path, version, field };
        KmsAction.Set(command, stdout, stderr, async (parse, kms, json, ct) =>
        {
            var kv = await KvPath.ResolveAsync(kms, parse.GetValue(path)!, allowEmptyKey: false, ct);
            var query = parse.GetValue(version) is { } v ? $"?version={v}" : "";
            var reply = await kms.SendAsync("GET", kv.Api("data") + query, null, ct, true, 404);
            if (reply.Status == 404)
            {
                var deleted = reply.Data["metadata"]?["deletion_time"]?.ToString() is { Length: > 0 } when ? $" (deleted at {when})" : "";
                throw new KmsCliException(ExitCodes.Rejected, $"no secret at {kv.Mount}{kv.Key}{query}{deleted}", reply.Raw.Length > 0 ? reply.Raw : null);
            }

            var data = reply.Data["data"] as JsonObject ?? [];
            if (parse.GetValue(field) is { } name)
            {
                if (!data.ContainsKey(name))
                {
                    throw new KmsCliException(ExitCodes.Rejected, $"{kv.Mount}{kv.Key} has no field '{name}'");
                }

                await stdout.WriteLineAsync(json ? data[name]?.ToJsonString() ?? "null" : KmsAction.Text(data[name]));
                return ExitCodes.Ok;
            }

            if (json)
            {
                await KmsAction.PrintJsonAsync(stdout, reply.Data);
            }
            else
            {
                await KmsAction.PrintFieldsAsync(stdout, data);
            }

            return ExitCodes.Ok;
        });
        return command;
    }
}
