using System.CommandLine;
using System.Text.Json.Nodes;

namespace Morphisms.Cli.Commands.Kms;

/// <summary><c>morph kms token create</c>: a child (or orphan) token of the caller's token. The new token is printed once.</summary>
public static class KmsTokenCreateCommand
{
    /// <summary>Creates the command.</summary>
    public static Command Create(TextWriter stdout, TextWriter stderr)
    {
        var policies = new Option<string[]>("--policy") { Description = "Policy to attach (repeatable).", AllowMultipleArgumentsPerToken = true };
        var ttl = new Option<string?>("--ttl") { Description = "TTL, e.g. 30m or 3600." };
        var maxTtl = new Option<string?>("--explicit-max-ttl") { Description = "Hard lifetime cap, renewals included." };
        var period = new Option<string?>("--period") { Description = "Make the token periodic (root or sudo)." };
        var noDefault = new Option<bool>("--no-default-policy") { Description = "Do not attach the default policy." };
        var orphan = new Option<bool>("--orphan") { Description = "Create an orphan (no parent)." };
        var notRenewable = new Option<bool>("--not-renewable") { Description = "Refuse renewals." };
        var uses = new Option<int?>("--use-limit") { Description = "Number of uses (0: unlimited)." };
        var displayName = new Option<string?>("--display-name") { Description = "A label shown in lookups and the audit log." };
        var command = new Command("create", "Create a token; it is printed once.") { policies, ttl, maxTtl, period, noDefault, orphan, notRenewable, uses, displayName };
        KmsAction.Set(command, stdout, stderr, async (parse, kms, json, ct) =>
        {
            var body = new JsonObject
            {
                ["policies"] = new JsonArray([.. (parse.GetValue(policies) ?? []).Select(p => (JsonNode)p)]),
                ["no_default_policy"] = parse.GetValue(noDefault),
                ["renewable"] = !parse.GetValue(notRenewable),
            };
            AddIfSet(body, "ttl", parse.GetValue(ttl));
            AddIfSet(body, "explicit_max_ttl", parse.GetValue(maxTtl));
            AddIfSet(body, "period", parse.GetValue(period));
            AddIfSet(body, "display_name", parse.GetValue(displayName));
            if (parse.GetValue(uses) is { } n)
            {
                body["num_uses"] = n;
            }

            var reply = await kms.SendAsync("POST", parse.GetValue(orphan) ? "auth/token/create-orphan" : "auth/token/create", body, ct);
            var auth = reply.Body?["auth"] as JsonObject ?? [];
            if (json)
            {
                await KmsAction.PrintJsonAsync(stdout, reply.Body);
                return ExitCodes.Ok;
            }

            await KmsAction.PrintFieldsAsync(stdout, new JsonObject
            {
                ["token"] = auth["client_token"]?.DeepClone(),
                ["token_accessor"] = auth["accessor"]?.DeepClone(),
                ["token_duration"] = KmsAction.Seconds(auth["lease_duration"]),
                ["token_renewable"] = auth["renewable"]?.ToString(),
                ["token_policies"] = auth["policies"]?.DeepClone(),
            });
            return ExitCodes.Ok;
        });
        return command;
    }

    private static void AddIfSet(JsonObject body, string name, string? value)
    {
        if (!string.IsNullOrEmpty(value))
        {
            body[name] = value;
        }
    }
}
