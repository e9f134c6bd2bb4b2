using System.CommandLine;
using System.Text.Json;
using System.Text.Json.Nodes;

namespace Morphisms.Cli.Commands.Kms;

/// <summary>
/// <c>morph kms kv put PATH [--data-file FILE]</c>: writes a new version of a secret from a JSON object read from a
/// file or standard input. Unlike <c>vault kv put k=v</c>, values never go on the command line.
/// </summary>
public static class KmsKvPutCommand
{
    /// <summary>Creates the command.</summary>
    public static Command Create(TextWriter stdout, TextWriter stderr)
    {
        var path = new Argument<string>("path") { Description = "MOUNT/KEY, e.g. secret/app." };
        var dataFile = new Option<string?>("--data-file") { Description = "JSON object with the secret's fields; '-' or absent: standard input." };
        var cas = new Option<long?>("--cas") { Description = "Check-and-set: write only if the current version is this (0: only if absent)." };
        var command = new Command("put", "Write a new version of a secret (JSON object from --data-file or standard input).") { path, dataFile, cas };
        KmsAction.Set(command, stdout, stderr, async (parse, kms, json, ct) =>
        {
            var file = parse.GetValue(dataFile);
            var data = ParseObject(SecretInput.Read(file, "--data-file", prompt: new HiddenPrompt("Secret data, a JSON object", OneLine: false)), SecretInput.IsStandardInput(file) ? SecretInput.StandardInput : $"--data-file {file}");
            var kv = await KvPath.ResolveAsync(kms, parse.GetValue(path)!, allowEmptyKey: false, ct);
            var body = new JsonObject { ["data"] = data };
            if (parse.GetValue(cas) is { } version)
            {
                body["options"] = new JsonObject { ["cas"] = version };
            }

            var reply = await kms.SendAsync("POST", kv.Api("data"), body, ct);
            if (json)
            {
                await KmsAction.PrintJsonAsync(stdout, reply.Data);
            }
            else
            {
                await stdout.WriteLineAsync($"{kv.Mount}{kv.Key}: version {reply.Data["version"]} written");
            }

            return ExitCodes.Ok;
        });
        return command;
    }

    /// <summary>The secret's fields in <paramref name="text"/>, read from <paramref name="source"/> (which the errors name).</summary>
    private static JsonObject ParseObject(string text, string source)
    {
        try
        {
            // The error never quotes the input: it is a secret.
            return JsonNode.Parse(text) as JsonObject ?? throw KmsCliException.Usage($"{source}: expected a JSON object of the secret's fields");
        }
        catch (JsonException e)
        {
            throw KmsCliException.Usage($"{source}: not JSON (line {(e.LineNumber ?? 0) + 1}, byte {(e.BytePositionInLine ?? 0) + 1})");
        }
    }
}
