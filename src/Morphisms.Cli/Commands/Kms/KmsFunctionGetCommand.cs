using System.CommandLine;
using System.Text.Json.Nodes;

namespace Morphisms.Cli.Commands.Kms;

/// <summary><c>morph kms function get NAME</c>: a function's registration and revisions.</summary>
public static class KmsFunctionGetCommand
{
    /// <summary>Creates the command.</summary>
    public static Command Create(TextWriter stdout, TextWriter stderr)
    {
        var name = new Argument<string>("name") { Description = "Function name." };
        var command = new Command("get", "Show a function's registration.") { name };
        KmsAction.Set(command, stdout, stderr, async (parse, kms, json, ct) =>
        {
            var functionName = parse.GetValue(name)!;
            var reply = await kms.SendAsync("GET", "morphisms/functions/" + Uri.EscapeDataString(functionName), null, ct, true, 404);
            if (reply.Status == 404)
            {
                // The KMS says why when it has a reason (a deleted function whose name its owners keep).
                var reason = reply.Body?["errors"] is JsonArray { Count: > 0 } errors && errors[0] is JsonValue first && first.TryGetValue<string>(out var text) ? text : null;
                throw new KmsCliException(ExitCodes.Rejected, reason ?? $"function {functionName} is not registered", reply.Raw.Length > 0 ? reply.Raw : null);
            }

            if (json)
            {
                await KmsAction.PrintJsonAsync(stdout, reply.Data);
                return ExitCodes.Ok;
            }

            var data = (JsonObject)reply.Data.DeepClone();
            data["token_ttl"] = KmsAction.Seconds(data["token_ttl"]);
            data["token_max_ttl"] = KmsAction.Seconds(data["token_max_ttl"]);
            data["revisions"] = string.Join(", ", (data["revisions"] as JsonArray ?? []).Select(r => $"{r?["revision"]} {r?["status"]}"));
            await KmsAction.PrintFieldsAsync(stdout, data);
            return ExitCodes.Ok;
        });
        return command;
    }
}
