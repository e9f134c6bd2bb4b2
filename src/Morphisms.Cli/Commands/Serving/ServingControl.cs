using System.CommandLine;
using System.Net.Http.Json;
using System.Text.Json;
using System.Text.Json.Nodes;
using Morphisms.Cli.Paths;
using Morphisms.Serving.Hosting;

namespace Morphisms.Cli.Commands.Serving;

/// <summary>
/// Finds the serving host's control API (<c>--control URL</c>, else the state file the host wrote under the data
/// directory) and runs a command against it, turning failures into a message and exit code 1.
/// </summary>
internal static class ServingControl
{
    private static readonly JsonSerializerOptions Indented = new() { WriteIndented = true };

    /// <summary>Adds <c>--control</c> and <c>--json</c> to <paramref name="command"/> and sets its action.</summary>
    public static void Set(Command command, TextWriter stdout, TextWriter stderr, Func<ParseResult, HttpClient, bool, CancellationToken, Task<int>> action)
    {
        var control = new Option<string?>("--control") { Description = "Control API of the serving host (default: from the state file in the data directory)." };
        var json = new Option<bool>("--json") { Description = "Print the API's JSON." };
        command.Options.Add(control);
        command.Options.Add(json);
        command.SetAction(async (parse, ct) =>
        {
            try
            {
                var url = parse.GetValue(control) ?? FromStateFile();
                using var http = CreateClient(url);
                return await action(parse, http, parse.GetValue(json), ct);
            }
            catch (ServingCliException e)
            {
                await stderr.WriteLineAsync($"morph: {e.Message}");
                return ExitCodes.Rejected;
            }
            catch (HttpRequestException e)
            {
                await stderr.WriteLineAsync($"morph: the serving host does not answer: {e.Message}");
                return ExitCodes.Rejected;
            }
        });
    }

    /// <summary>
    /// A client for the control API at <paramref name="url"/>. The API answers only to a loopback Host (against DNS
    /// rebinding) and listens on loopback anyway, so a URL naming it otherwise (an /etc/hosts alias, say) gets
    /// <c>Host: localhost:PORT</c>.
    /// </summary>
    internal static HttpClient CreateClient(string url)
    {
        var baseAddress = new Uri(url.EndsWith('/') ? url : url + "/");
        var http = new HttpClient { BaseAddress = baseAddress, Timeout = TimeSpan.FromMinutes(2) };
        if (!ControlApi.IsLoopbackHost(baseAddress.Host))
        {
            http.DefaultRequestHeaders.Host = $"localhost:{baseAddress.Port}";
        }

        return http;
    }

    /// <summary>Sends a request (a body as <c>application/json</c>, which the API requires); returns the JSON body or throws with the API's error.</summary>
    public static async Task<JsonNode?> SendAsync(HttpClient http, HttpMethod method, string path, JsonObject? body, CancellationToken ct)
    {
        using var request = new HttpRequestMessage(method, path) { Content = body is null ? null : JsonContent.Create(body) };
        using var response = await http.SendAsync(request, ct);
        var text = await response.Content.ReadAsStringAsync(ct);
        var node = text.Length == 0 ? null : JsonNode.Parse(text);
        if (!response.IsSuccessStatusCode)
        {
            var errors = node?["errors"] is JsonArray list ? string.Join("; ", list.Select(e => e?.ToString())) : text;
            throw new ServingCliException($"{(int)response.StatusCode}: {errors}");
        }

        return node;
    }

    /// <summary>Prints JSON indented.</summary>
    public static Task PrintJsonAsync(TextWriter stdout, JsonNode? node) => stdout.WriteLineAsync(node?.ToJsonString(Indented) ?? "null");

    /// <summary>Prints rows as aligned columns.</summary>
    public static async Task PrintTableAsync(TextWriter stdout, IReadOnlyList<string> header, IReadOnlyList<IReadOnlyList<string>> rows)
    {
        var widths = header.Select((h, i) => Math.Max(h.Length, rows.Count == 0 ? 0 : rows.Max(r => r[i].Length)) + 2).ToArray();
        await stdout.WriteLineAsync(string.Concat(header.Select((h, i) => h.PadRight(widths[i]))).TrimEnd());
        foreach (var row in rows)
        {
            await stdout.WriteLineAsync(string.Concat(row.Select((c, i) => c.PadRight(widths[i]))).TrimEnd());
        }
    }

    private static string FromStateFile()
    {
        var path = Path.Combine(MorphPaths.FromEnvironment().DataDirectory, ServingStateFile.FileName);
        return ServingStateFile.Read(path)?.Control
            ?? throw new ServingCliException($"no serving host found ({path} is missing): start one, or pass --control URL");
    }
}

/// <summary>A serving command failed; the message is for the user.</summary>
internal sealed class ServingCliException(string message) : Exception(message);
