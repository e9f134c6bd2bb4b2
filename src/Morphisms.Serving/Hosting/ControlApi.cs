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

    private static void Map(WebApplication app, ServingHost host)
    {
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
