using System.CommandLine;
using System.Net;
using System.Net.Sockets;
using System.Net.Http.Json;
using System.Text.Json;
using System.Text.Json.Nodes;
using Morphisms.Cli.Paths;
using Morphisms.Serving.Hosting;

namespace Morphisms.Cli.Commands.Serving;

/// <summary>
/// Finds the serving host's control API (<c>--control URL</c>, else the state file the host wrote under the data
/// directory) and its control token (<c>--control-token-file FILE</c>, else the file the state file names), and runs a
/// command against it, turning failures into a message and exit code 1 (2 for an unusable URL, a malformed argument or
/// input the API refuses with 400). The token goes in the
/// <c>Authorization</c> header only: never on a command line, in a URL or in a message.
/// </summary>
internal static class ServingControl
{
    private static readonly JsonSerializerOptions Indented = new() { WriteIndented = true };

    /// <summary>How long a control request may take, but for a deploy or traffic change (<see cref="RolloutTimeout"/>).</summary>
    internal static readonly TimeSpan RequestTimeout = TimeSpan.FromMinutes(2);

    /// <summary>
    /// How long a deploy or traffic change may take: the host answers once the revision it moves traffic to has a ready
    /// instance, or once the revision's progress deadline (10 min, Knative's) passed without one, and with a margin for
    /// the KMS registration before; a client giving up first would leave the user without the outcome.
    /// </summary>
    internal static readonly TimeSpan RolloutTimeout = new Morphisms.Serving.Autoscaling.AutoscalerOptions().ProgressDeadline + TimeSpan.FromMinutes(2);

    /// <summary>
    /// Adds <c>--control</c>, <c>--control-token-file</c> and <c>--json</c> to <paramref name="command"/> and sets its
    /// action. <paramref name="checkInput"/>, when given, runs first and throws <see cref="ServingCliException"/> for input
    /// that is wrong whatever the host (exit 2), before a host is looked for. <paramref name="timeout"/> bounds each
    /// request (<see cref="RequestTimeout"/> unless given).
    /// </summary>
    public static void Set(Command command, TextWriter stdout, TextWriter stderr, Func<ParseResult, HttpClient, bool, CancellationToken, Task<int>> action, Action<ParseResult>? checkInput = null, TimeSpan? timeout = null)
    {
        var limit = timeout ?? RequestTimeout;
        var control = new Option<string?>("--control") { Description = "Control API of the serving host (default: from the state file in the data directory)." };
        var tokenFile = new Option<string?>("--control-token-file") { Description = "File holding the control API's token (default: the one the state file in the data directory names)." };
        var json = new Option<bool>("--json") { Description = "Print the API's JSON." };
        command.Options.Add(control);
        command.Options.Add(tokenFile);
        command.Options.Add(json);
        command.SetAction(async (parse, ct) =>
        {
            Uri? address = null;
            try
            {
                checkInput?.Invoke(parse);
                address = ControlAddress(parse.GetValue(control));
                using var http = CreateClient(address, ReadToken(ControlTokenFile(parse.GetValue(tokenFile), address)));
                http.Timeout = limit;
                return await action(parse, http, parse.GetValue(json), ct);
            }
            catch (ServingCliException e)
            {
                await stderr.WriteLineAsync($"morph: {e.Message}");
                return e.ExitCode;
            }
            catch (HttpRequestException e)
            {
                await stderr.WriteLineAsync($"morph: the serving host does not answer: {e.Message}");
                return ExitCodes.Rejected;
            }
            catch (TaskCanceledException) when (!ct.IsCancellationRequested)
            {
                // HttpClient's own timeout, not Ctrl-C (which cancels ct and ends the command as usual).
                await stderr.WriteLineAsync($"morph: the serving host at {address} did not answer within {limit.TotalMinutes:0} minutes");
                return ExitCodes.Rejected;
            }
            catch (InvalidOperationException e)
            {
                // A field of the wrong JSON type in a reply (JsonNode.GetValue and AsArray throw this).
                await stderr.WriteLineAsync($"morph: the serving host at {address} answered in an unexpected form: {e.Message}");
                return ExitCodes.Rejected;
            }
        });
    }

    /// <summary>
    /// A client for the control API at <paramref name="url"/> that sends <paramref name="token"/> with every request.
    /// The API answers only to a loopback Host (against DNS rebinding) and listens on loopback anyway, so a URL naming
    /// it otherwise (an /etc/hosts alias, say) gets <c>Host: localhost:PORT</c>. It connects to loopback addresses
    /// only, whatever the name resolves to, and follows no redirect: the token in plain HTTP never leaves the machine.
    /// </summary>
    internal static HttpClient CreateClient(string url, BearerToken token) => CreateClient(new Uri(url.EndsWith('/') ? url : url + "/"), token);

    /// <inheritdoc cref="CreateClient(string, BearerToken)"/>
    internal static HttpClient CreateClient(Uri baseAddress, BearerToken token)
    {
        // No proxy either: HTTP_PROXY would receive the token in plain text.
        var handler = new SocketsHttpHandler { AllowAutoRedirect = false, UseProxy = false, ConnectCallback = ConnectToLoopbackAsync };
        var http = new HttpClient(handler) { BaseAddress = baseAddress, Timeout = RequestTimeout };
        if (!ControlApi.IsLoopbackHost(baseAddress.Host))
        {
            http.DefaultRequestHeaders.Host = $"localhost:{baseAddress.Port}";
        }

        http.DefaultRequestHeaders.Authorization = new System.Net.Http.Headers.AuthenticationHeaderValue("Bearer", token.Value);
        return http;
    }

    private static async ValueTask<Stream> ConnectToLoopbackAsync(SocketsHttpConnectionContext context, CancellationToken ct)
    {
        var host = context.DnsEndPoint.Host.Trim('[', ']');
        var addresses = IPAddress.TryParse(host, out var literal) ? [literal] : await Dns.GetHostAddressesAsync(host, ct);
        var loopback = addresses.Where(IPAddress.IsLoopback).ToArray();
        if (loopback.Length == 0)
        {
            throw new HttpRequestException($"{host} is not a loopback address: the control API listens on loopback, and its token is sent nowhere else");
        }

        var socket = new Socket(SocketType.Stream, ProtocolType.Tcp) { NoDelay = true };
        try
        {
            await socket.ConnectAsync(loopback, context.DnsEndPoint.Port, ct);
            return new NetworkStream(socket, ownsSocket: true);
        }
        catch
        {
            socket.Dispose();
            throw;
        }
    }

    /// <summary>The control token in <paramref name="path"/>.</summary>
    /// <exception cref="ServingCliException">The file is missing, unreadable or holds no token (the message names the file, never its content).</exception>
    internal static BearerToken ReadToken(string path)
    {
        try
        {
            return BearerToken.ReadFile(path);
        }
        catch (Exception e) when (e is FileNotFoundException or DirectoryNotFoundException)
        {
            throw new ServingCliException($"the control token file {path} does not exist: is the serving host running (it writes a new one at every start)? Or pass --control-token-file FILE");
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException or InvalidDataException)
        {
            throw new ServingCliException($"cannot read the control token from {path}: {e.Message} (the file is the serving host's user's only, mode 0600)");
        }
    }

    /// <summary>Sends a request (a body as <c>application/json</c>, which the API requires); returns the JSON body or throws with the API's error.</summary>
    /// <exception cref="ServingCliException">The API refused the request, or answered with something that is not JSON.</exception>
    public static async Task<JsonNode?> SendAsync(HttpClient http, HttpMethod method, string path, JsonObject? body, CancellationToken ct)
    {
        using var request = new HttpRequestMessage(method, path) { Content = body is null ? null : JsonContent.Create(body) };
        using var response = await http.SendAsync(request, ct);
        // Whatever answered may echo the request (a debugging proxy, another service on that port): its text reaches the
        // user's terminal only without the token.
        var text = Redact(await response.Content.ReadAsStringAsync(ct), http.DefaultRequestHeaders.Authorization?.Parameter);
        JsonNode? node;
        try
        {
            node = text.Length == 0 ? null : JsonNode.Parse(text);
        }
        catch (JsonException)
        {
            // Not the control API (another service on that port, a proxy's error page): say so rather than crash. The
            // control API's replies carry no secrets, so the start of what came back helps find out what answered.
            var start = text.Length > 200 ? text[..200] + "…" : text;
            throw new ServingCliException($"{http.BaseAddress} answered {(int)response.StatusCode} with a body that is not JSON (is it the serving host's control API?): {start}");
        }

        if (!response.IsSuccessStatusCode)
        {
            var errors = node?["errors"] is JsonArray list ? string.Join("; ", list.Select(e => e?.ToString())) : text;
            // The control API's 400 is the input's fault (a spec it refuses, a traffic split that does not add up): a
            // usage or input error, exit 2 as everywhere else, and its message names the field.
            throw response.StatusCode == HttpStatusCode.BadRequest
                ? new ServingCliException(errors, ExitCodes.UsageOrInput)
                : new ServingCliException($"{(int)response.StatusCode}: {errors}");
        }

        return node;
    }

    private static string Redact(string text, string? token) =>
        string.IsNullOrEmpty(token) ? text : text.Replace(token, "[control token]", StringComparison.Ordinal);

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

    /// <summary>The control API's base URL from <c>--control</c>, else from the serving host's state file.</summary>
    /// <exception cref="ServingCliException">No host is found, or the URL is not an absolute http(s) URL (exit 2).</exception>
    private static Uri ControlAddress(string? option)
    {
        var (text, source) = option is not null ? (option, "--control") : FromStateFile();
        if (!Uri.TryCreate(text.EndsWith('/') ? text : text + "/", UriKind.Absolute, out var url) || url.Scheme is not ("http" or "https"))
        {
            throw new ServingCliException($"{source}: not an http(s) URL: {text}", ExitCodes.UsageOrInput);
        }

        return url;
    }

    /// <summary>
    /// The control token file from <c>--control-token-file</c>, else the one the serving host's state file names — and
    /// that one only for the control API the same state file names: the local host's token is not sent to another port.
    /// </summary>
    /// <exception cref="ServingCliException">Neither names one, or <paramref name="address"/> is another API's.</exception>
    private static string ControlTokenFile(string? option, Uri address)
    {
        if (option is not null)
        {
            return option;
        }

        var path = StateFilePath();
        var state = ServingStateFile.Read(path);
        if (state?.ControlTokenFile is not null && Uri.TryCreate(state.Control.EndsWith('/') ? state.Control : state.Control + "/", UriKind.Absolute, out var own) && own != address)
        {
            throw new ServingCliException($"--control {address} is not the serving host {path} names ({own}): its token is not sent elsewhere; pass --control-token-file FILE for that host");
        }

        return state?.ControlTokenFile
            ?? throw new ServingCliException(File.Exists(path)
                ? $"{path} names no control token file (the host keeps its token in memory): pass --control-token-file FILE"
                : $"no control token file: {path} is missing, so pass --control-token-file FILE with --control");
    }

    private static string StateFilePath() => Path.Combine(MorphPaths.FromEnvironment().DataDirectory, ServingStateFile.FileName);

    private static (string Url, string Source) FromStateFile()
    {
        var path = StateFilePath();
        var control = ServingStateFile.Read(path)?.Control
            ?? throw new ServingCliException($"no serving host found ({path} is missing): start one, or pass --control URL");
        return (control, path);
    }
}

/// <summary>A serving command failed; the message is for the user.</summary>
/// <param name="message">What went wrong.</param>
/// <param name="exitCode">The exit code it maps to (<see cref="ExitCodes"/>); a refusal or failure unless said otherwise.</param>
internal sealed class ServingCliException(string message, int exitCode = ExitCodes.Rejected) : Exception(message)
{
    /// <summary>The process exit code.</summary>
    public int ExitCode { get; } = exitCode;
}
