using System.CommandLine;
using System.Text.Json.Nodes;

namespace Morphisms.Cli.Commands.Serving;

/// <summary><c>morph ls</c>: functions with their traffic and instances.</summary>
public static class LsCommand
{
    /// <summary>Creates the command.</summary>
    public static Command Create(TextWriter stdout, TextWriter stderr)
    {
        var command = new Command("ls", "List deployed functions: host, traffic split, ready and desired instances.");
        ServingControl.Set(command, stdout, stderr, async (_, http, json, ct) =>
        {
            var list = await ServingControl.SendAsync(http, HttpMethod.Get, "v1/functions", null, ct) as JsonArray ?? [];
            if (json)
            {
                await ServingControl.PrintJsonAsync(stdout, list);
                return ExitCodes.Ok;
            }

            var rows = list.SelectMany(f => (f!["traffic"] as JsonArray ?? []).Select(t => (IReadOnlyList<string>)
            [
                f["name"]!.ToString(), f["host"]!.ToString(), f["tee"]!.ToString(), t!["revision"]!.ToString(), $"{t["percent"]}%",
                t["tag_host"]?.ToString() ?? "-", $"{t["ready"]}/{t["desired"]}", t["standby"]!.ToString(),
            ])).ToList();
            await ServingControl.PrintTableAsync(stdout, ["FUNCTION", "HOST", "TEE", "REVISION", "TRAFFIC", "TAG HOST", "READY", "STANDBY"], rows);
            return ExitCodes.Ok;
        });
        return command;
    }
}
