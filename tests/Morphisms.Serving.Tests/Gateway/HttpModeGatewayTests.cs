using System.Net;
using System.Net.Sockets;
using System.Text;
using Morphisms.Serving.Gateway;

namespace Morphisms.Serving.Tests.Gateway;

/// <summary>The HTTP-mode gateway's forwarding on its own, with stand-in resolvers and apps.</summary>
public sealed class HttpModeGatewayTests
{
    private const string Host = "hello.fn.morphisms.local";

    [Theory]
    [InlineData("GET", null)]
    [InlineData("POST", "a body that must arrive whole")]
    public async Task A_refused_connect_goes_to_another_instance_with_the_request_untouched(string method, string? body)
    {
        await using var app = new PlainApp(TimeSpan.Zero);
        var dead = new IPEndPoint(IPAddress.Loopback, TestProcesses.FreePort());
        var resolver = new RefusedFirstResolver(new("hello-00001", dead), new("hello-00001", app.Endpoint));
        await using var gateway = await StartAsync(resolver);

        using var response = await SendAsync(gateway, method, body);

        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        Assert.Equal($"{method} {body}", await response.Content.ReadAsStringAsync());
        Assert.Equal(HttpModeGateway.WarningText, response.Headers.GetValues(HttpModeGateway.WarningHeader).Single());
        Assert.Equal([dead], Assert.Single(resolver.Refused));
    }

    [Fact]
    public async Task A_resolver_that_names_the_refused_instance_again_is_a_502()
    {
        var dead = new IPEndPoint(IPAddress.Loopback, TestProcesses.FreePort());
        await using var gateway = await StartAsync(new Fixed(new("hello-00001", dead)));

        using var response = await SendAsync(gateway, "GET", null);

        Assert.Equal(HttpStatusCode.BadGateway, response.StatusCode);
        Assert.Equal("1", response.Headers.RetryAfter?.ToString());
    }

    [Fact]
    public async Task An_app_slower_than_the_activity_timeout_is_a_504_not_a_502()
    {
        await using var app = new PlainApp(TimeSpan.FromSeconds(5));
        await using var gateway = await StartAsync(new Fixed(new("hello-00001", app.Endpoint)), activityTimeout: TimeSpan.FromMilliseconds(300));

        using var response = await SendAsync(gateway, "GET", null);

        Assert.Equal(HttpStatusCode.GatewayTimeout, response.StatusCode);
        Assert.Equal(HttpModeGateway.WarningText, response.Headers.GetValues(HttpModeGateway.WarningHeader).Single());
    }

    private static async Task<HttpModeGateway> StartAsync(IBackendResolver resolver, TimeSpan? activityTimeout = null)
    {
        var gateway = new HttpModeGateway(new HttpGatewayOptions { Warnings = TextWriter.Null, ActivityTimeout = activityTimeout ?? TimeSpan.FromSeconds(100) },
            resolver, new RevisionConcurrency());
        await gateway.StartAsync(CancellationToken.None);
        return gateway;
    }

    private static async Task<HttpResponseMessage> SendAsync(HttpModeGateway gateway, string method, string? body)
    {
        using var client = new HttpClient { Timeout = TimeSpan.FromSeconds(30) };
        using var request = new HttpRequestMessage(new HttpMethod(method), $"http://{gateway.LocalEndPoint}/");
        request.Headers.Host = Host;
        if (body is not null)
        {
            request.Content = new StringContent(body);
        }

        return await client.SendAsync(request);
    }

    private sealed class Fixed(BackendTarget target) : IBackendResolver
    {
        public ValueTask<BackendTarget?> ResolveAsync(string serverName, CancellationToken cancellationToken) => ValueTask.FromResult<BackendTarget?>(target);
    }

    /// <summary>A plain-HTTP app that answers each request, after <paramref name="delay"/>, with its method and body.</summary>
    private sealed class PlainApp : IAsyncDisposable
    {
        private readonly TcpListener _listener = new(IPAddress.Loopback, 0);
        private readonly CancellationTokenSource _stop = new();
        private readonly Task _serving;

        public PlainApp(TimeSpan delay)
        {
            _listener.Start();
            _serving = ServeAsync(delay);
        }

        public IPEndPoint Endpoint => (IPEndPoint)_listener.LocalEndpoint;

        public async ValueTask DisposeAsync()
        {
            await _stop.CancelAsync();
            _listener.Stop();
            await _serving;
            _stop.Dispose();
        }

        private async Task ServeAsync(TimeSpan delay)
        {
            try
            {
                while (true)
                {
                    var client = await _listener.AcceptTcpClientAsync(_stop.Token);
                    _ = AnswerAsync(client, delay);
                }
            }
            catch (Exception e) when (e is OperationCanceledException or SocketException or ObjectDisposedException)
            {
            }
        }

        private async Task AnswerAsync(TcpClient client, TimeSpan delay)
        {
            using var _ = client;
            try
            {
                var reader = new StreamReader(client.GetStream(), Encoding.ASCII);
                var method = (await reader.ReadLineAsync(_stop.Token))?.Split(' ')[0];
                var length = 0;
                while (await reader.ReadLineAsync(_stop.Token) is { Length: > 0 } header)
                {
                    if (header.StartsWith("Content-Length:", StringComparison.OrdinalIgnoreCase))
                    {
                        length = int.Parse(header["Content-Length:".Length..].Trim(), System.Globalization.CultureInfo.InvariantCulture);
                    }
                }

                var body = new char[length];
                if (length > 0)
                {
                    await reader.ReadBlockAsync(body, _stop.Token);
                }

                await Task.Delay(delay, _stop.Token);
                var answer = Encoding.ASCII.GetBytes($"{method} {new string(body)}");
                await client.GetStream().WriteAsync(Encoding.ASCII.GetBytes($"HTTP/1.1 200 OK\r\nContent-Length: {answer.Length}\r\nConnection: close\r\n\r\n").Concat(answer).ToArray(), _stop.Token);
            }
            catch (Exception e) when (e is OperationCanceledException or IOException or SocketException)
            {
            }
        }
    }
}
