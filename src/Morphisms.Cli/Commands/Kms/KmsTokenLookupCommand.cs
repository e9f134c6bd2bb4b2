using System.CommandLine;
using System.Text.Json.Nodes;

namespace Morphisms.Cli.Commands.Kms;

/// <summary><c>morph kms token lookup [--accessor A | --stdin]</c>: a token's properties (the caller's own by default).</summary>
public static class KmsTokenLookupCommand
{
    /// <summary>Creates the command.</summary>
    public static Command Create(TextWriter stdout, TextWriter stderr)
    {
        var target = new TokenTarget();
        var command = new Command("lookup", "Show a token's policies, TTL and metadata.");
        target.AddTo(command);
        KmsAction.Set(command, stdout, stderr, async (parse, kms, json, ct) =>
        {
            var (path, body) = target.Resolve(parse, "lookup", selfIsGet: true);
            var reply = await kms.SendAsync(body is null ? "GET" : "POST", path, body, ct);

            // The token itself is not echoed, --json included: a lookup is for reading properties, and its output ends up
            // in terminals, logs and scripts' files where a live token must not.
            var data = (JsonObject)reply.Data.DeepClone();
            data.Remove("id");
            if (json)
            {
                await KmsAction.PrintJsonAsync(stdout, data);
                return ExitCodes.Ok;
            }

            data["ttl"] = KmsAction.Seconds(data["ttl"]);
            await KmsAction.PrintFieldsAsync(stdout, data);
            return ExitCodes.Ok;
        });
        return command;
    }
}
