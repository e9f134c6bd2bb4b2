using System.Collections.Concurrent;
using System.Net;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;

namespace Morphisms.Agent.Tests;

/// <summary>What <see cref="KmsProxy"/> does with the KMS's answer to a request it forwarded.</summary>
public enum ProxyFault
{
    /// <summary>Relays it.</summary>
    None,

    /// <summary>Answers 503 instead: the KMS handled the request, the agent never learns how.</summary>
    ServiceUnavailable,

    /// <summary>Drops the connection instead.</summary>
    Drop,

    /// <summary>
    /// Answers 200 <c>{"\ud800":1}</c> instead: well-formed JSON whose key escapes a lone surrogate, which
    /// System.Text.Json parses but cannot decode to a string.
    /// </summary>
    LoneSurrogateKey,

    /// <summary>Relays it with every <see cref="KmsProxy.LoneSurrogateMarker"/> in it turned into the escape <c>\ud800</c>.</summary>
    LoneSurrogateMarked,
}

/// <summary>
/// A TLS-terminating proxy in front of an <see cref="AgentKms"/>, serving the KMS's own certificate (so the agent's
/// pin holds), that forwards every request and may spoil the answer: a load balancer or an HA peer whose reply is lost.
/// </summary>
public sealed class KmsProxy : IAsyncDisposable
{
    private readonly WebApplication _app;
    private readonly HttpClient _upstream;
    private readonly ConcurrentQueue<string> _paths = new();

    private KmsProxy(WebApplication app, HttpClient upstream)
    {
        _app = app;
        _upstream = upstream;
    }

    /// <summary>What <see cref="ProxyFault.LoneSurrogateMarked"/> replaces with a lone surrogate escape.</summary>
    public const string LoneSurrogateMarker = "LONE_SURROGATE";

    /// <summary>The proxy's address.</summary>
    public Uri BaseAddress { get; private set; } = null!;

    /// <summary>The request paths forwarded so far, in order.</summary>
    public IReadOnlyList<string> Paths => [.. _paths];

    /// <summary>
    /// Starts one; <paramref name="fault"/> is asked, after each forwarded request, with its path (e.g.
    /// <c>/v1/auth/attest/login</c>) and how many requests to that path came before it. <paramref name="rewrite"/>, when
    /// given, is asked the same with the KMS's answer too, for an answer it relays (<see cref="ProxyFault.None"/>): the
    /// text it returns goes to the agent instead, with the KMS's status; null relays the answer as it is.
    /// </summary>
    public static async Task<KmsProxy> StartAsync(AgentKms kms, Func<string, int, ProxyFault> fault, Func<string, int, string, string?>? rewrite = null)
    {
        var certificate = kms.Server.TlsCertificate!;
        var handler = new SocketsHttpHandler();
        handler.SslOptions.RemoteCertificateValidationCallback = (_, cert, _, _) => cert is not null && cert.GetRawCertData().AsSpan().SequenceEqual(certificate.RawData);
        var upstream = new HttpClient(handler) { BaseAddress = kms.Server.BaseAddress };

        var builder = WebApplication.CreateSlimBuilder();
        builder.Logging.ClearProviders();
        builder.WebHost.UseKestrelHttpsConfiguration();
        builder.WebHost.ConfigureKestrel(k => k.Listen(IPAddress.Loopback, 0, listen => listen.UseHttps(certificate)));
        var app = builder.Build();
        var proxy = new KmsProxy(app, upstream);
        var seen = new ConcurrentDictionary<string, int>();
        app.Run(async context =>
        {
            var path = context.Request.Path.Value ?? "";
            proxy._paths.Enqueue(path);
            var before = seen.AddOrUpdate(path, 1, (_, n) => n + 1) - 1;
            using var request = new HttpRequestMessage(new HttpMethod(context.Request.Method), path.TrimStart('/') + context.Request.QueryString);
            using var body = new MemoryStream();
            await context.Request.Body.CopyToAsync(body);
            if (body.Length > 0)
            {
                request.Content = new ByteArrayContent(body.ToArray());
                request.Content.Headers.TryAddWithoutValidation("Content-Type", context.Request.ContentType);
            }

            if (context.Request.Headers.TryGetValue("X-Vault-Token", out var token))
            {
                request.Headers.Add("X-Vault-Token", token.ToString());
            }

            using var response = await upstream.SendAsync(request);
            var answer = await response.Content.ReadAsByteArrayAsync();
            switch (fault(path, before))
            {
                case ProxyFault.Drop:
                    context.Abort();
                    return;
                case ProxyFault.ServiceUnavailable:
                    context.Response.StatusCode = 503;
                    context.Response.ContentType = "application/json";
                    await context.Response.WriteAsync("""{"errors":["proxy: the upstream answer was lost"]}""");
                    return;
                case ProxyFault.LoneSurrogateKey:
                    context.Response.ContentType = "application/json";
                    await context.Response.WriteAsync("""{"\ud800":1}""");
                    return;
                case ProxyFault.LoneSurrogateMarked:
                    context.Response.StatusCode = (int)response.StatusCode;
                    context.Response.ContentType = response.Content.Headers.ContentType?.ToString();
                    await context.Response.WriteAsync(System.Text.Encoding.UTF8.GetString(answer).Replace(LoneSurrogateMarker, "\\ud800", StringComparison.Ordinal));
                    return;
                default:
                    context.Response.StatusCode = (int)response.StatusCode;
                    context.Response.ContentType = response.Content.Headers.ContentType?.ToString();
                    if (rewrite?.Invoke(path, before, System.Text.Encoding.UTF8.GetString(answer)) is { } text)
                    {
                        context.Response.ContentType = "application/json";
                        await context.Response.WriteAsync(text);
                        return;
                    }

                    await context.Response.Body.WriteAsync(answer);
                    return;
            }
        });
        await app.StartAsync();
        var address = app.Services.GetRequiredService<IServer>().Features.Get<IServerAddressesFeature>()!.Addresses.Single();
        proxy.BaseAddress = new Uri(address.Replace("[::]", "127.0.0.1", StringComparison.Ordinal) + "/");
        return proxy;
    }

    /// <inheritdoc />
    public async ValueTask DisposeAsync()
    {
        await _app.DisposeAsync();
        _upstream.Dispose();
    }
}
