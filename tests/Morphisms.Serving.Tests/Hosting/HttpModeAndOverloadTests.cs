using System.Net;
using System.Net.Security;
using System.Net.Sockets;
using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;
using Morphisms.Serving.Activation;
using Morphisms.Serving.Gateway;
using Morphisms.Serving.Hosting;
using Morphisms.Serving.Spec;

namespace Morphisms.Serving.Tests.Hosting;

/// <summary>The HTTP-mode gateway (YARP, development only) and what both gateways do when the activator is full.</summary>
public sealed class HttpModeAndOverloadTests
{
    private static readonly ScaleSpec FromZero = new() { Min = 0, Initial = 0, StableWindow = TimeSpan.FromSeconds(6), ScaleToZeroGracePeriod = TimeSpan.FromSeconds(1) };

    [Fact]
    public async Task HttpMode_ColdStartsAPlainApp_ProxiesByHost_AndSaysItIsNotConfidential()
    {
        using var functions = new TestFunctions();
        await using var host = await functions.HostAsync(GatewayMode.Http);
        Assert.Contains("HTTP mode: not confidential", functions.Log.ToString());
        var deployed = await host.DeployAsync(functions.Spec("plain", "p", FunctionTee.None, FromZero), CancellationToken.None);
        Assert.Null(deployed.ExpectMeasurement); // no certificate for a client to check

        using var client = new HttpClient { Timeout = TimeSpan.FromSeconds(30) };
        using var request = new HttpRequestMessage(HttpMethod.Get, $"http://{host.GatewayEndPoint}/");
        request.Headers.Host = "plain.fn.morphisms.local";
        using var response = await client.SendAsync(request);
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        Assert.StartsWith("rev=p;", await response.Content.ReadAsStringAsync());
        Assert.Equal(HttpModeGateway.WarningText, response.Headers.GetValues(HttpModeGateway.WarningHeader).Single());

        using var unknown = new HttpRequestMessage(HttpMethod.Get, $"http://{host.GatewayEndPoint}/");
        unknown.Headers.Host = "nobody.fn.morphisms.local";
        Assert.Equal(HttpStatusCode.NotFound, (await client.SendAsync(unknown)).StatusCode);
        Assert.Contains("morph_requests_total{function=\"plain\",revision=\"plain-00001\",outcome=\"forwarded\"} 1", host.Metrics.Render());
    }

    [Fact]
    public async Task HttpMode_WithACertificate_ServesHttpsWithIt_AndRefusesPlainHttp()
    {
        using var key = ECDsa.Create(ECCurve.NamedCurves.nistP256);
        var request = new CertificateRequest("CN=tls.fn.morphisms.local", key, HashAlgorithmName.SHA256);
        var names = new SubjectAlternativeNameBuilder();
        names.AddDnsName("tls.fn.morphisms.local");
        request.CertificateExtensions.Add(names.Build());
        using var certificate = request.CreateSelfSigned(DateTimeOffset.UtcNow.AddMinutes(-5), DateTimeOffset.UtcNow.AddHours(1));
        using var functions = new TestFunctions();
        await using var host = await functions.HostAsync(GatewayMode.Http, httpsCertificate: certificate);
        Assert.Contains("terminates HTTPS with its own certificate", functions.Log.ToString());
        await host.DeployAsync(functions.Spec("tls", "t", FunctionTee.None, FromZero), CancellationToken.None);

        byte[]? presented = null;
        using var handler = new SocketsHttpHandler
        {
            ConnectCallback = async (_, ct) =>
            {
                var socket = new Socket(SocketType.Stream, ProtocolType.Tcp);
                await socket.ConnectAsync(host.GatewayEndPoint, ct);
                return new NetworkStream(socket, ownsSocket: true);
            },
            SslOptions = new SslClientAuthenticationOptions
            {
                RemoteCertificateValidationCallback = (_, served, _, _) =>
                {
                    presented = served?.GetRawCertData();
                    return true;
                },
            },
        };
        using var client = new HttpClient(handler) { Timeout = TimeSpan.FromSeconds(30) };
        using var response = await client.GetAsync("https://tls.fn.morphisms.local/");
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        Assert.StartsWith("rev=t;", await response.Content.ReadAsStringAsync());
        Assert.Equal(certificate.RawData, presented);
        Assert.Equal(HttpModeGateway.WarningText, response.Headers.GetValues(HttpModeGateway.WarningHeader).Single());

        using var plain = new HttpClient { Timeout = TimeSpan.FromSeconds(10) };
        using var plainRequest = new HttpRequestMessage(HttpMethod.Get, $"http://{host.GatewayEndPoint}/");
        plainRequest.Headers.Host = "tls.fn.morphisms.local";
        await Assert.ThrowsAsync<HttpRequestException>(() => plain.SendAsync(plainRequest));
    }

    [Fact]
    public async Task HttpMode_QueueFull_Answers503WithRetryAfter()
    {
        using var functions = new TestFunctions();
        await using var app = new HangUpServer();
        var launcher = new FakeLauncher(readyAtOnce: false) { AppEndpoint = app.Endpoint }; // instances never become ready: requests pile up
        await using var host = await functions.HostAsync(GatewayMode.Http, launcher: launcher,
            activator: new ActivatorOptions { MaxQueuedPerRevision = 1, QueueTimeout = TimeSpan.FromSeconds(20), RetryAfter = TimeSpan.FromSeconds(3) });
        await host.DeployAsync(functions.Spec("jam", "j", FunctionTee.None, FromZero), CancellationToken.None);
        using var client = new HttpClient { Timeout = TimeSpan.FromSeconds(30) };
        HttpRequestMessage Request()
        {
            var request = new HttpRequestMessage(HttpMethod.Get, $"http://{host.GatewayEndPoint}/");
            request.Headers.Host = "jam.fn.morphisms.local";
            return request;
        }

        var held = client.SendAsync(Request());
        await Eventually.True(() => host.Instances.Queued("jam-00001") == 1, "first request held");
        using var refused = await client.SendAsync(Request());
        Assert.Equal(HttpStatusCode.ServiceUnavailable, refused.StatusCode);
        Assert.Equal(TimeSpan.FromSeconds(3), refused.Headers.RetryAfter!.Delta);
        Assert.Contains("activator_queue_depth{function=\"jam\",revision=\"jam-00001\"} 1", host.Metrics.Render());

        // The held one is released when an instance becomes ready (the fake one's app hangs up: the proxy answers 502).
        launcher.Launched.First().MarkReady();
        using var released = await held.WaitAsync(TimeSpan.FromSeconds(20));
        Assert.Equal(HttpStatusCode.BadGateway, released.StatusCode);
    }

    [Fact]
    public async Task ConfidentialMode_QueueFull_ClosesTheConnectionBeforeTls()
    {
        using var functions = new TestFunctions();
        var launcher = new FakeLauncher(readyAtOnce: false);
        await using var host = await functions.HostAsync(GatewayMode.Confidential, new KmsConnection { Url = new Uri("https://127.0.0.1:1/"), CaSha256 = new string('0', 64), Token = "unused" },
            launcher: launcher, activator: new ActivatorOptions { MaxQueuedPerRevision = 1, QueueTimeout = TimeSpan.FromSeconds(20) });
        var registrationFails = await Assert.ThrowsAsync<ServingException>(() => host.DeployAsync(functions.Spec("jam", "j", scale: FromZero), CancellationToken.None));
        Assert.Contains("KMS registration failed", registrationFails.Message);

        // Without a reachable KMS nothing is deployed; drive the activator directly through a host-less route instead.
        var routes = new Morphisms.Serving.Routing.RouteTable();
        routes.Set(Morphisms.Serving.Routing.FunctionRoute.Create("jam", "fn.morphisms.local", [new Morphisms.Serving.Routing.TrafficTarget("jam-00001", 100)]));
        var instances = new RevisionInstances();
        var resolver = new ActivatingBackendResolver(routes, instances, new NoTrigger(), new ActivatorOptions { MaxQueuedPerRevision = 1, QueueTimeout = TimeSpan.FromSeconds(20) });
        await using var gateway = new SniPassthroughGateway(new SniGatewayOptions(), resolver, new RevisionConcurrency());
        gateway.Start();

        using var first = await SendHelloAsync(gateway.LocalEndPoint);
        await Eventually.True(() => instances.Queued("jam-00001") == 1, "first connection held");
        using var second = await SendHelloAsync(gateway.LocalEndPoint);
        var buffer = new byte[16];
        Assert.Equal(0, await second.GetStream().ReadAsync(buffer).AsTask().WaitAsync(TimeSpan.FromSeconds(10)));
        Assert.Equal(1, gateway.RefusedForBackend);
    }

    [Fact]
    public async Task HttpMode_ARequestHeldWhenItsFunctionIsRemoved_Gets503AtOnce()
    {
        using var functions = new TestFunctions();
        var launcher = new FakeLauncher(readyAtOnce: false);
        await using var host = await functions.HostAsync(GatewayMode.Http, launcher: launcher, activator: new ActivatorOptions { QueueTimeout = TimeSpan.FromSeconds(30) });
        await host.DeployAsync(functions.Spec("gone", "old", FunctionTee.None, FromZero), CancellationToken.None);
        using var client = new HttpClient { Timeout = TimeSpan.FromSeconds(60) };
        var held = client.SendAsync(HostRequest(host, "gone"));
        await Eventually.True(() => host.Instances.Queued("gone-00001") == 1, "request held");

        await host.RemoveAsync("gone", CancellationToken.None);
        using var refused = await held.WaitAsync(TimeSpan.FromSeconds(10)); // not after the activator's 30 s
        Assert.Equal(HttpStatusCode.ServiceUnavailable, refused.StatusCode);
        Assert.Contains("revision gone-00001: function gone was removed", await refused.Content.ReadAsStringAsync());
    }

    [Fact]
    public async Task HttpMode_ARequestHeldForARemovedFunction_IsNeverGivenToItsRedeployedCode()
    {
        using var functions = new TestFunctions();
        await using var app = new HangUpServer();
        var launcher = new FakeLauncher(readyAtOnce: false) { AppEndpoint = app.Endpoint };
        await using var host = await functions.HostAsync(GatewayMode.Http, launcher: launcher, activator: new ActivatorOptions { QueueTimeout = TimeSpan.FromSeconds(30) });
        await host.DeployAsync(functions.Spec("reborn", "old", FunctionTee.None, FromZero), CancellationToken.None);
        using var client = new HttpClient { Timeout = TimeSpan.FromSeconds(60) };
        var held = client.SendAsync(HostRequest(host, "reborn"));
        await Eventually.True(() => host.Instances.Queued("reborn-00001") == 1, "request held");

        await host.RemoveAsync("reborn", CancellationToken.None);
        var redeployed = await host.DeployAsync(functions.Spec("reborn", "new", FunctionTee.None, FromZero), CancellationToken.None);
        var poke = client.SendAsync(HostRequest(host, "reborn")); // asks the new revision for an instance
        await Eventually.True(() => launcher.Alive.Any(), "new code launched");
        foreach (var instance in launcher.Alive)
        {
            instance.MarkReady();
        }

        // The old request was meant for the old code: refused, not proxied to the new code's instance (the fake
        // instance's app hangs up, so being proxied there would answer 502).
        using var refused = await held.WaitAsync(TimeSpan.FromSeconds(10));
        Assert.Equal(HttpStatusCode.ServiceUnavailable, refused.StatusCode);
        Assert.Contains("revision reborn-00001: function reborn was removed", await refused.Content.ReadAsStringAsync());
        using var served = await poke.WaitAsync(TimeSpan.FromSeconds(20));
        Assert.Equal(HttpStatusCode.BadGateway, served.StatusCode);
        Assert.Equal("reborn-00002", redeployed.Revision); // numbering goes on across rm: a name never means two codes
    }

    private static HttpRequestMessage HostRequest(ServingHost host, string function)
    {
        var request = new HttpRequestMessage(HttpMethod.Get, $"http://{host.GatewayEndPoint}/");
        request.Headers.Host = $"{function}.fn.morphisms.local";
        return request;
    }

    private static async Task<TcpClient> SendHelloAsync(IPEndPoint gateway)
    {
        var client = new TcpClient();
        await client.ConnectAsync(gateway);
        await client.GetStream().WriteAsync(await Gateway.TlsTestPeers.CaptureClientHelloAsync("jam.fn.morphisms.local"));
        return client;
    }

    private sealed class NoTrigger : IScaleFromZeroTrigger
    {
        public void Poke(string revision, int queued)
        {
        }
    }
}
