using System.CommandLine;
using System.Globalization;
using System.Text.Json.Nodes;

namespace Morphisms.Cli.Commands.Serving;

/// <summary>
/// <c>morph traffic FN REV=PERCENT… [--tag REV=TAG]…</c>: replace a function's traffic split. A revision may have several
/// tags: the first goes on its share's entry, each further one on an entry of its own at 0 % (Knative's model, one tag
/// per traffic entry). A tag given twice is left to the host, which refuses it naming the tag. Traffic moved to a
/// revision that starts with instances moves once it has a ready instance, and not at all when it gets none within its
/// progress deadline (the host's 409, exit 1).
/// </summary>
public static class TrafficCommand
{
    /// <summary>Creates the command.</summary>
    public static Command Create(TextWriter stdout, TextWriter stderr)
    {
        var function = new Argument<string>("function") { Description = "The function." };
        var split = new Argument<string[]>("split") { Description = "REVISION=PERCENT pairs summing to 100 (REVISION may be 'latest').", Arity = ArgumentArity.OneOrMore };
        var tags = new Option<string[]>("--tag") { Description = "REVISION=TAG: the revision also answers at TAG-FUNCTION.DOMAIN (morph invoke FUNCTION --tag TAG); repeat it to give a revision several tags.", AllowMultipleArgumentsPerToken = false };
        var command = new Command("traffic", "Split a function's traffic across revisions, and tag revisions with their own host names.") { function, split, tags };
        ServingControl.Set(command, stdout, stderr, async (parse, http, json, ct) =>
        {
            var entries = new List<(string Revision, int Percent, string? Tag)>();
            foreach (var pair in parse.GetValue(split)!)
            {
                var (revision, value) = Split(pair, "REVISION=PERCENT");
                if (!int.TryParse(value.TrimEnd('%'), NumberStyles.None, CultureInfo.InvariantCulture, out var percent))
                {
                    throw new ServingCliException($"'{pair}': the percent is not a whole number", ExitCodes.UsageOrInput);
                }

                entries.Add((revision, percent, null));
            }

            foreach (var pair in parse.GetValue(tags) ?? [])
            {
                var (revision, tag) = Split(pair, "REVISION=TAG");
                // The first tag of a revision goes on its share's entry; each further one is an entry of its own at 0 %,
                // as in Knative (one tag per traffic entry): overwriting the entry's tag kept only the last one, silently.
                var index = entries.FindIndex(e => e.Revision == revision && e.Tag is null);
                if (index >= 0)
                {
                    entries[index] = entries[index] with { Tag = tag };
                }
                else
                {
                    entries.Add((revision, 0, tag)); // tagged only: reachable at its tag host, no share of the main host
                }
            }

            var body = new JsonObject
            {
                ["traffic"] = new JsonArray([.. entries.Select(e => (JsonNode)new JsonObject { ["revision"] = e.Revision, ["percent"] = e.Percent, ["tag"] = e.Tag })]),
            };
            var result = await ServingControl.SendAsync(http, HttpMethod.Put, $"v1/functions/{Uri.EscapeDataString(parse.GetValue(function)!)}/traffic", body, ct);
            if (json)
            {
                await ServingControl.PrintJsonAsync(stdout, result);
                return ExitCodes.Ok;
            }

            foreach (var t in result?["traffic"] as JsonArray ?? [])
            {
                await stdout.WriteLineAsync($"{t!["revision"]}  {t["percent"]}%{(t["tag_host"] is { } host ? $"  {host}" : "")}");
            }

            return ExitCodes.Ok;
        }, timeout: ServingControl.RolloutTimeout);
        return command;
    }

    /// <summary>Splits <c>LEFT=RIGHT</c>; anything else is a usage error (exit 2) naming the argument and its form.</summary>
    private static (string Left, string Right) Split(string pair, string form)
    {
        var at = pair.IndexOf('=', StringComparison.Ordinal);
        return at > 0 && at < pair.Length - 1 ? (pair[..at], pair[(at + 1)..]) : throw new ServingCliException($"'{pair}' is not {form}", ExitCodes.UsageOrInput);
    }
}
