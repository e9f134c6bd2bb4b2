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
/// The control API (JSON, loopback only): what <c>morph deploy|ls|revisions|traffic|logs|rm</c> call, the
/// Prometheus metrics, and the endpoint agents POST their cold-start reports to.
/// <code>
/// POST   /v1/functions                      {"path": "/abs/dir-or-function.yaml"}  → deploy
/// GET    /v1/functions                                                             → ls
/// GET    /v1/functions/{fn}/revisions
/// PUT    /v1/functions/{fn}/traffic         {"traffic": [{"revision","percent","tag"}]}
/// GET    /v1/functions/{fn}/logs?lines=N
/// DELETE /v1/functions/{fn}
/// POST   /v1/instances/{id}/cold-start      (the agent's report)
/// GET    /metrics                           (Prometheus text)
/// </code>
/// Loopback only because it has no authentication: anyone who can reach it can deploy. It never handles secrets.
/// A web page in the user's browser can reach loopback too, so every request must name a loopback host
/// (<see cref="IsLoopbackHost"/>: no DNS rebinding) and every POST/PUT/PATCH must be <c>application/json</c> (a
/// browser sends that cross-origin only after a CORS preflight, which this API never answers); anything else gets a
/// 4xx <c>{"errors": […]}</c> before it reaches a route.
/// </summary>
public sealed class ControlApi : IAsyncDisposable
{
    private static readonly JsonSerializerOptions Json = new(JsonSerializerDefaults.Web) { PropertyNamingPolicy = JsonNamingPolicy.SnakeCaseLower };
    private readonly WebApplication _app;

    private ControlApi(WebApplication app, Uri url)
    {
        _app = app;
        Url = url;
    }

    /// <summary>The base URL.</summary>
    public Uri Url { get; }

    /// <summary>Starts the API for <paramref name="host"/>.</summary>
    /// <exception cref="ArgumentException"><paramref name="listen"/> is not a loopback address.</exception>
    public static async Task<ControlApi> StartAsync(ServingHost host, IPEndPoint listen, CancellationToken ct)
    {
        if (!IPAddress.IsLoopback(listen.Address))
        {
            throw new ArgumentException($"the control API has no authentication and listens on loopback only, not {listen}", nameof(listen));
        }

        var builder = WebApplication.CreateSlimBuilder(new WebApplicationOptions { ApplicationName = "Morphisms.Serving.Control", ContentRootPath = AppContext.BaseDirectory });
        builder.Logging.ClearProviders();
        builder.WebHost.ConfigureKestrel(k => k.Listen(listen));
        var app = builder.Build();
        Map(app, host);
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

    // Before routing: a request from a browser page (another Host after DNS rebinding, or a "simple" cross-origin
    // POST as text/plain or a form) never reaches a handler.
    private static async Task GuardAsync(HttpContext context, Func<Task> next)
    {
        var request = context.Request;
        if (!request.Host.HasValue || !IsLoopbackHost(request.Host.Host))
        {
            await RefuseAsync(context, StatusCodes.Status421MisdirectedRequest, $"the control API answers only to a loopback Host (localhost, 127.0.0.1, [::1]), not '{request.Host}'");
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

    private static void Map(WebApplication app, ServingHost host)
    {
        app.Use(GuardAsync);
        app.MapPost("/v1/functions", (HttpContext c) => Handle(c, async () =>
        {
            var body = await ReadAsync(c);
            var path = body["path"]?.GetValue<string>() ?? throw new ServingException("path: required");
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
            var traffic = (body["traffic"] as JsonArray ?? throw new ServingException("traffic: required")).Select((t, i) => new TrafficSpec(
                t?["revision"]?.GetValue<string>() ?? throw new ServingException($"traffic[{i}].revision: required"),
                t["percent"]?.GetValue<int>() ?? 0,
                t["tag"]?.GetValue<string>())).ToList();
            await host.SetTrafficAsync(fn, traffic, c.RequestAborted);
            return host.List().First(f => f.Name == fn);
        }));
        app.MapGet("/v1/functions/{fn}/logs", (HttpContext c, string fn, int? lines) => Handle(c, () =>
            host.Logs(fn, lines ?? 200).Select(l => new { time = l.Line.Time, source = l.Source, stream = l.Line.Stream, text = l.Line.Text }).ToList()));
        app.MapDelete("/v1/functions/{fn}", (HttpContext c, string fn) => Handle(c, async () =>
        {
            await host.RemoveAsync(fn, c.RequestAborted);
            return new { removed = fn };
        }));
        app.MapPost("/v1/instances/{id}/cold-start", async (HttpContext c, string id) =>
        {
            var report = await ReadAsync(c);
            c.Response.StatusCode = host.AcceptColdStartReport(id, report) ? 204 : 404;
        });
        app.MapGet("/metrics", () => Results.Text(host.Metrics.Render(), "text/plain; version=0.0.4"));
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
            context.Response.StatusCode = e.NotFound ? 404 : 400;
            await context.Response.WriteAsJsonAsync(new { errors = new[] { e.Message } }, Json, context.RequestAborted);
        }
    }

    private static async Task<JsonObject> ReadAsync(HttpContext context)
    {
        try
        {
            return await JsonNode.ParseAsync(context.Request.Body, cancellationToken: context.RequestAborted) as JsonObject
                ?? throw new ServingException("the body must be a JSON object");
        }
        catch (JsonException e)
        {
            throw new ServingException($"the body is not JSON: {e.Message}");
        }
    }
}
