using System.Diagnostics;
using System.Globalization;
using System.Net;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;
using Morphisms.Serving.Activation;
using Yarp.ReverseProxy.Forwarder;

namespace Morphisms.Serving.Gateway;

/// <summary>
/// The development gateway: plain HTTP, routed by the Host header, forwarded with YARP to the instances' plain
/// app ports. <b>Not confidential</b>: the gateway sees plaintext and bypasses the instance's attested TLS. It says
/// so at start and in a response header. Requests for a revision with no ready instance wait at the activator;
/// when the activator refuses (queue full or timeout) the client gets 503 with Retry-After.
/// </summary>
public sealed class HttpModeGateway : IAsyncDisposable
{
    /// <summary>The response header that marks every answer of this gateway.</summary>
    public const string WarningHeader = "Morphisms-Warning";

    /// <summary>Its value.</summary>
    public const string WarningText = "HTTP mode: not confidential";

    private readonly HttpGatewayOptions _options;
    private readonly IBackendResolver _resolver;
    private readonly RevisionConcurrency _concurrency;
    private readonly IGatewayObserver? _observer;
    private readonly HttpMessageInvoker _client;
    private WebApplication? _app;

    /// <summary>Creates the gateway; <see cref="StartAsync"/> listens.</summary>
    public HttpModeGateway(HttpGatewayOptions options, IBackendResolver resolver, RevisionConcurrency concurrency, IGatewayObserver? observer = null)
    {
        _options = options;
        _resolver = resolver;
        _concurrency = concurrency;
        _observer = observer;

        // YARP's recommended forwarding client: no proxy, cookies, redirects or decompression in between.
        _client = new HttpMessageInvoker(new SocketsHttpHandler
        {
            UseProxy = false,
            AllowAutoRedirect = false,
            AutomaticDecompression = DecompressionMethods.None,
            UseCookies = false,
            ConnectTimeout = TimeSpan.FromSeconds(10),
            ActivityHeadersPropagator = null,
        });
    }

    /// <summary>The bound address (after <see cref="StartAsync"/>).</summary>
    public IPEndPoint LocalEndPoint { get; private set; } = new(IPAddress.Loopback, 0);

    /// <summary>Listens and serves.</summary>
    public async Task StartAsync(CancellationToken ct)
    {
        var warnings = _options.Warnings ?? Console.Error;
        var terminates = _options.Certificate is null ? "plain HTTP" : "HTTPS with its own certificate";
        await warnings.WriteLineAsync($"WARNING! {WarningText}: the gateway terminates {terminates} and forwards plaintext to the apps; for development only.").ConfigureAwait(false);
        var builder = WebApplication.CreateSlimBuilder(new WebApplicationOptions { ApplicationName = "Morphisms.Serving.HttpGateway", ContentRootPath = AppContext.BaseDirectory });
        builder.Logging.ClearProviders();
        builder.WebHost.ConfigureKestrel(k => k.Listen(_options.Listen, listen =>
        {
            if (_options.Certificate is { } certificate)
            {
                listen.UseHttps(certificate);
            }
        }));
        builder.Services.AddHttpForwarder();
        _app = builder.Build();
        var forwarder = _app.Services.GetRequiredService<IHttpForwarder>();
        _app.Run(context => ServeAsync(context, forwarder));
        await _app.StartAsync(ct).ConfigureAwait(false);
        var address = _app.Services.GetRequiredService<IServer>().Features.Get<IServerAddressesFeature>()!.Addresses.First();
        LocalEndPoint = new IPEndPoint(_options.Listen.Address, new Uri(address).Port);
    }

    /// <inheritdoc />
    public async ValueTask DisposeAsync()
    {
        if (_app is not null)
        {
            await _app.StopAsync().ConfigureAwait(false);
            await _app.DisposeAsync().ConfigureAwait(false);
        }

        _client.Dispose();
    }

    private async Task ServeAsync(HttpContext context, IHttpForwarder forwarder)
    {
        var arrived = Stopwatch.GetTimestamp();
        context.Response.Headers[WarningHeader] = WarningText;
        var host = context.Request.Host.Host.ToLowerInvariant();
        List<IPEndPoint>? refused = null;
        BackendTarget? held = null;
        while (true)
        {
            BackendTarget? target;
            try
            {
                target = await (refused is null
                    ? _resolver.ResolveAsync(host, context.RequestAborted)
                    : _resolver.ResolveAsync(host, refused, context.RequestAborted)).ConfigureAwait(false);
            }
            catch (ActivatorOverloadedException e)
            {
                _observer?.Refused(host, e.Revision);
                context.Response.StatusCode = StatusCodes.Status503ServiceUnavailable;
                context.Response.Headers.RetryAfter = Math.Max(1, (int)Math.Ceiling(e.RetryAfter.TotalSeconds)).ToString(CultureInfo.InvariantCulture);
                await context.Response.WriteAsync($"{e.Message}\n", context.RequestAborted).ConfigureAwait(false);
                return;
            }

            if (target is null)
            {
                context.Response.StatusCode = StatusCodes.Status404NotFound;
                await context.Response.WriteAsync($"no function at {host}\n", context.RequestAborted).ConfigureAwait(false);
                return;
            }

            if (refused?.Contains(target.Endpoint) == true)
            {
                // A resolver that cannot leave it out has nothing else.
                context.Response.StatusCode = StatusCodes.Status502BadGateway;
                context.Response.Headers.RetryAfter = "1";
                return;
            }

            if (target.Held && held is null && _observer is { } observer)
            {
                // Once per request: the response starts once, whichever attempt it comes from.
                held = target;
                context.Response.OnStarting(() =>
                {
                    observer.FirstByte(held, Stopwatch.GetElapsedTime(arrived));
                    return Task.CompletedTask;
                });
            }

            if (await ForwardAsync(context, forwarder, target).ConfigureAwait(false))
            {
                return;
            }

            (refused ??= []).Add(target.Endpoint);
        }
    }

    // False when the instance refused the connection, so that nothing of the request was sent, and the response is as it
    // was for another attempt: an instance stopping refuses at TCP before it drains so that its clients go elsewhere, and
    // one that died does until the runtime notices.
    private async Task<bool> ForwardAsync(HttpContext context, IHttpForwarder forwarder, BackendTarget target)
    {
        using var inFlight = _concurrency.Begin(target.Revision);
        var error = await forwarder.SendAsync(context, $"http://{target.Endpoint}", _client, new ForwarderRequestConfig { ActivityTimeout = _options.ActivityTimeout }).ConfigureAwait(false);
        if (error == ForwarderError.Request && !context.Response.HasStarted && ConnectionRefused(context.Features.Get<IForwarderErrorFeature>()?.Exception))
        {
            // YARP set its 502 and its error; it forwards only a response still untouched.
            context.Response.StatusCode = StatusCodes.Status200OK;
            context.Features.Set<IForwarderErrorFeature>(null);
            return false;
        }

        _observer?.Forwarded(target);
        if (error != ForwarderError.None && !context.Response.HasStarted)
        {
            // YARP sets the status it knows the cause of (504 for an instance slower than the activity timeout, 502 for one
            // that failed); 502 only where it set none.
            if (context.Response.StatusCode < StatusCodes.Status400BadRequest)
            {
                context.Response.StatusCode = StatusCodes.Status502BadGateway;
            }

            context.Response.Headers.RetryAfter = "1";
        }

        return true;
    }

    private static bool ConnectionRefused(Exception? error)
    {
        for (var e = error; e is not null; e = e.InnerException)
        {
            if (e is System.Net.Sockets.SocketException { SocketErrorCode: System.Net.Sockets.SocketError.ConnectionRefused })
            {
                return true;
            }
        }

        return false;
    }
}
