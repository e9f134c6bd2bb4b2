using System.Net;
using System.Text.Json;
using System.Text.Json.Nodes;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;
using Morphisms.Serving.Spec;

namespace Morphisms.Serving.Hosting;

/// <summary>
/// The control API (JSON, loopback only, bearer token): what <c>morph deploy|ls|revisions|traffic|logs|rm</c> call,
/// the Prometheus metrics, and the endpoint agents POST their cold-start reports to.
/// <code>
/// POST   /v1/functions                      {"path": "/abs/dir-or-function.yaml"}  → deploy
/// GET    /v1/functions                                                             → ls
/// GET    /v1/functions/{fn}/revisions
/// PUT    /v1/functions/{fn}/traffic         {"traffic": [{"revision","percent","tag"}]}
/// GET    /v1/functions/{fn}/logs?lines=N
/// DELETE /v1/functions/{fn}
/// POST   /v1/instances/{id}/cold-start      (the agent's report)
/// GET    /metrics                           (Prometheus text; the metrics token opens it too)
/// </code>
/// Loopback is not a boundary on its own: other users of the machine reach it, and so does every instance, which shares
/// the host's network namespace (see <see cref="Runtime.Bubblewrap"/>) and runs code the operator did not write. So
/// every route needs <c>Authorization: Bearer CONTROL-TOKEN</c> (<see cref="ServingHost.ControlToken"/>, in the 0600
/// <see cref="ServingHostOptions.ControlTokenFile"/> that sandboxed instances never see), compared in constant time;
/// the exceptions are an instance's cold-start report, which carries that instance's own report token instead
/// (its agent runs beside the function's code, so it never gets the control token), and the metrics, which the
/// metrics token (<see cref="ServingHost.MetricsToken"/>) opens as well, so that a scraper never holds the control token. A web page in the user's
/// browser can reach loopback too, so every request must also name a loopback host (<see cref="IsLoopbackHost"/>: no
/// DNS rebinding) and every POST/PUT/PATCH must be <c>application/json</c> (a browser sends that cross-origin only
/// after a CORS preflight, which this API never answers). A request failing a check gets a 4xx
/// <c>{"errors": […]}</c> (421, then 401, then 415) before any handler runs; a report's own token is checked by its
/// handler, before the body is read. It never handles secrets besides these tokens.
/// </summary>
public sealed class ControlApi : IAsyncDisposable
{
    private static readonly JsonSerializerOptions Json = new(JsonSerializerDefaults.Web) { PropertyNamingPolicy = JsonNamingPolicy.SnakeCaseLower };

    // A body naming a property twice is refused at parsing: JsonObject's indexer would otherwise throw ArgumentException
    // (a 500) on the first lookup, and which of the two values counts is anybody's guess.
    private static readonly JsonDocumentOptions RefuseDuplicates = new() { AllowDuplicateProperties = false };
    private readonly WebApplication _app;

    private ControlApi(WebApplication app, Uri url)
    {
        _app = app;
        Url = url;
    }

    /// <summary>The base URL.</summary>
    public Uri Url { get; }

    /// <summary>Starts the API for <paramref name="host"/>; every route but the instances' reports needs the control token, or for the metrics the metrics token.</summary>
    /// <exception cref="ArgumentException"><paramref name="listen"/> is not a loopback address.</exception>
    public static async Task<ControlApi> StartAsync(ServingHost host, IPEndPoint listen, ControlApiTokens tokens, CancellationToken ct)
    {
        if (!IPAddress.IsLoopback(listen.Address))
        {
            throw new ArgumentException($"the control API listens on loopback only (it speaks plain HTTP), not {listen}", nameof(listen));
        }

        var builder = WebApplication.CreateSlimBuilder(new WebApplicationOptions { ApplicationName = "Morphisms.Serving.Control", ContentRootPath = AppContext.BaseDirectory });
        builder.Logging.ClearProviders();
        builder.WebHost.ConfigureKestrel(k => k.Listen(listen));
        var app = builder.Build();
        Map(app, host, tokens);
        await app.StartAsync(ct).ConfigureAwait(false);
        var address = app.Services.GetRequiredService<IServer>().Features.Get<IServerAddressesFeature>()!.Addresses.First();
        return new ControlApi(app, new Uri($"http://{listen.Address}:{new Uri(address).Port}/"));
    }

    /// <inheritdoc />
    public async ValueTask DisposeAsync()
    {
        await _app.StopAsync().ConfigureAwait(false);
        await _app.DisposeAsync().ConfigureAwait(false);
    }

    /// <summary>
    /// True when <paramref name="host"/> (a Host header's host part, without the port; IPv6 in brackets or not) is
    /// <c>localhost</c> or a loopback IP literal. A rebound DNS name pointing at 127.0.0.1 is not.
    /// </summary>
    public static bool IsLoopbackHost(string? host)
    {
        if (string.IsNullOrEmpty(host))
        {
            return false;
        }

        if (string.Equals(host, "localhost", StringComparison.OrdinalIgnoreCase))
        {
            return true;
        }

        var literal = host.StartsWith('[') && host.EndsWith(']') ? host[1..^1] : host;
        return literal.All(c => char.IsAsciiHexDigit(c) || c is '.' or ':')
            && IPAddress.TryParse(literal, out var address)
            && IPAddress.IsLoopback(address);
    }

    // After matching a route, before its handler: a request from a browser page (another Host after DNS rebinding, or a
    // "simple" cross-origin POST as text/plain or a form) or from a local process without the token never reaches one.
    private static async Task GuardAsync(HttpContext context, ControlApiTokens tokens, Func<Task> next)
    {
        var request = context.Request;
        if (!request.Host.HasValue || !IsLoopbackHost(request.Host.Host))
        {
            await RefuseAsync(context, StatusCodes.Status421MisdirectedRequest, $"the control API answers only to a loopback Host (localhost, 127.0.0.1, [::1]), not '{request.Host}'");
            return;
        }

        // An unknown path needs the token too: without it, nothing about the API can be learnt.
        var metadata = context.GetEndpoint()?.Metadata;
        var byInstance = metadata?.GetMetadata<InstanceReportRoute>() is not null;
        var authorization = request.Headers.Authorization.ToString();
        var metricsRoute = metadata?.GetMetadata<MetricsRoute>() is not null;
        var metricsToken = tokens.Metrics.MatchesAuthorization(authorization);
        if (!byInstance && !tokens.Control.MatchesAuthorization(authorization) && !(metricsRoute && metricsToken))
        {
            context.Response.Headers.WWWAuthenticate = "Bearer";
            await RefuseAsync(context, StatusCodes.Status401Unauthorized, metricsToken
                ? "the metrics token opens GET /metrics only; this route needs the control token"
                : $"the control API needs 'Authorization: Bearer <control token>'; the serving host writes its token to its control token file (morph up: {ServingStateFile.ControlTokenFileName} in the data directory)");
            return;
        }

        if ((HttpMethods.IsPost(request.Method) || HttpMethods.IsPut(request.Method) || HttpMethods.IsPatch(request.Method))
            && !IsJson(request.ContentType))
        {
            await RefuseAsync(context, StatusCodes.Status415UnsupportedMediaType, $"{request.Method} needs Content-Type: application/json, not '{request.ContentType}'");
            return;
        }

        await next();
    }

    private static bool IsJson(string? contentType) =>
        Microsoft.Net.Http.Headers.MediaTypeHeaderValue.TryParse(contentType, out var media)
        && string.Equals(media.MediaType.Value, "application/json", StringComparison.OrdinalIgnoreCase);

    private static async Task RefuseAsync(HttpContext context, int status, string error)
    {
        context.Response.StatusCode = status;
        await context.Response.WriteAsJsonAsync(new { errors = new[] { error } }, Json, context.RequestAborted);
    }

    private static void Map(WebApplication app, ServingHost host, ControlApiTokens tokens)
    {
        // Routing first, so the guard knows which route (and so which token) a request is for.
        app.UseRouting();
        app.Use((context, next) => GuardAsync(context, tokens, next));
        app.MapPost("/v1/functions", (HttpContext c) => Handle(c, async () =>
        {
            var body = await ReadAsync(c);
            var path = String(body["path"], "path") ?? throw new ServingException("path: required");
            FunctionSpec spec;
            try
            {
                spec = FunctionSpecLoader.Load(path);
            }
            catch (FunctionSpecException e)
            {
                throw new ServingException(e.Message);
            }

            return await host.DeployAsync(spec, c.RequestAborted);
        }));
        app.MapGet("/v1/functions", (HttpContext c) => Handle(c, () => host.List()));
        app.MapGet("/v1/functions/{fn}/revisions", (HttpContext c, string fn) => Handle(c, () => host.Revisions(fn)));
        app.MapPut("/v1/functions/{fn}/traffic", (HttpContext c, string fn) => Handle(c, async () =>
        {
            var body = await ReadAsync(c);
            var traffic = (body["traffic"] as JsonArray ?? throw new ServingException("traffic: required, an array")).Select((node, i) =>
            {
                var t = node as JsonObject ?? throw new ServingException($"traffic[{i}]: must be an object");
                return new TrafficSpec(
                    String(t["revision"], $"traffic[{i}].revision") ?? throw new ServingException($"traffic[{i}].revision: required"),
                    Int(t["percent"], $"traffic[{i}].percent") ?? 0,
                    String(t["tag"], $"traffic[{i}].tag"));
            }).ToList();
            // The status as the change left it: looked up afterwards, the function may already be gone (an rm since).
            return await host.SetTrafficAsync(fn, traffic, c.RequestAborted);
        }));
        app.MapGet("/v1/functions/{fn}/logs", (HttpContext c, string fn, int? lines) => Handle(c, () =>
            host.Logs(fn, lines ?? 200).Select(l => new { time = l.Line.Time, source = l.Source, stream = l.Line.Stream, text = l.Line.Text }).ToList()));
        app.MapDelete("/v1/functions/{fn}", (HttpContext c, string fn) => Handle(c, () => host.RemoveAsync(fn, c.RequestAborted)));
        app.MapPost("/v1/instances/{id}/cold-start", async (HttpContext c, string id) =>
        {
            // Authenticated before the body is read: only the instance's own token opens its own report.
            if (host.ReportingInstance(id, c.Request.Headers.Authorization) is not { } instance)
            {
                c.Response.Headers.WWWAuthenticate = "Bearer";
                await RefuseAsync(c, StatusCodes.Status401Unauthorized, $"a cold-start report needs the report token of instance {id}, which this host gave that instance's agent");
                return;
            }

            JsonObject report;
            try
            {
                report = await ReadAsync(c);
            }
            catch (ServingException e)
            {
                await RefuseAsync(c, StatusCodes.Status400BadRequest, $"cold-start report: {e.Message}");
                return;
            }

            instance.AcceptReport(report);
            c.Response.StatusCode = 204;
        }).WithMetadata(InstanceReportRoute.Instance);
        app.MapGet("/metrics", () => Results.Text(host.Metrics.Render(), "text/plain; version=0.0.4")).WithMetadata(MetricsRoute.Instance);
    }

    // Marks the route that the metrics token opens besides the control token.
    private sealed class MetricsRoute
    {
        public static readonly MetricsRoute Instance = new();
    }

    // Marks the route that an instance's report token opens instead of the control token.
    private sealed class InstanceReportRoute
    {
        public static readonly InstanceReportRoute Instance = new();
    }

    private static Task Handle<T>(HttpContext context, Func<T> action) => Handle(context, () => Task.FromResult(action()));

    private static async Task Handle<T>(HttpContext context, Func<Task<T>> action)
    {
        try
        {
            var result = await action();
            await context.Response.WriteAsJsonAsync(result, Json, context.RequestAborted);
        }
        catch (ServingException e)
        {
            context.Response.StatusCode = e.NotFound ? 404 : e.Unavailable ? 503 : e.Upstream ? 502 : e.NotReady ? 409 : 400;
            await context.Response.WriteAsJsonAsync(new { errors = new[] { e.Message } }, Json, context.RequestAborted);
        }
    }

    // A field of the wrong JSON type is the client's mistake (400), not the InvalidOperationException (500) of GetValue.
    private static string? String(JsonNode? node, string field) =>
        node is null ? null
        : node is JsonValue value && value.TryGetValue<string>(out var text) ? text
        : throw new ServingException($"{field}: must be a string, not a JSON {node.GetValueKind().ToString().ToLowerInvariant()}");

    private static int? Int(JsonNode? node, string field) =>
        node is null ? null
        : node is JsonValue value && value.TryGetValue<int>(out var number) ? number
        : throw new ServingException($"{field}: must be a whole number, not a JSON {(node.GetValueKind() == JsonValueKind.Number ? "fraction or out-of-range number" : node.GetValueKind().ToString().ToLowerInvariant())}");

    private static async Task<JsonObject> ReadAsync(HttpContext context)
    {
        try
        {
            return await JsonNode.ParseAsync(context.Request.Body, documentOptions: RefuseDuplicates, cancellationToken: context.RequestAborted) as JsonObject
                ?? throw new ServingException("the body must be a JSON object");
        }
        catch (JsonException e)
        {
            throw new ServingException($"the body is not JSON (or repeats a property): {e.Message}");
        }
    }
}

/// <summary>The tokens the control API accepts: <paramref name="Control"/> on every route, <paramref name="Metrics"/> on <c>GET /metrics</c> only.</summary>
/// <param name="Control">The control token.</param>
/// <param name="Metrics">The metrics token.</param>
public sealed record ControlApiTokens(BearerToken Control, BearerToken Metrics);
