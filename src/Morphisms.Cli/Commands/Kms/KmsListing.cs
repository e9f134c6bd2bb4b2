using System.Text.Json.Nodes;

namespace Morphisms.Cli.Commands.Kms;

/// <summary>Prints a LIST reply: keys one per line, or the <c>data</c> object as JSON.</summary>
internal static class KmsListing
{
    /// <summary>Prints <paramref name="reply"/>'s keys; a 404 (Vault's empty listing) prints nothing.</summary>
    public static async Task PrintAsync(TextWriter stdout, KmsReply reply, bool json)
    {
        var keys = reply.Status == 404 ? [] : reply.Data["keys"] as JsonArray ?? [];
        if (json)
        {
            await KmsAction.PrintJsonAsync(stdout, new JsonObject { ["keys"] = keys.DeepClone() });
            return;
        }

        foreach (var key in keys)
        {
            await stdout.WriteLineAsync(key?.ToString());
        }
    }
}
