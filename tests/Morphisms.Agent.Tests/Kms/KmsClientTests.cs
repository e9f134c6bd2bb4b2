using System.Collections.Concurrent;
using System.Net;
using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;
using System.Text;
using System.Text.Json.Nodes;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;
using Morphisms.Agent.Kms;
using Morphisms.Attestation.Trust;

namespace Morphisms.Agent.Tests.Kms;

/// <summary>
/// What the agent's KMS client reads and where it follows a redirect: answers are bounded, and a redirect is followed
/// only as an HA standby's to its active node is (307/308, https, same path and query, at most three), to a server the
/// pin accepts in its own handshake.
/// </summary>
public sealed class KmsClientTests : IDisposable
{
    private readonly X509Certificate2 _kmsCertificate = Certificate();

    private byte[] Pin => SHA256.HashData(_kmsCertificate.RawData);

    private KmsClient Client(Uri address) => new(address, new KmsPin(Pin, TimeProvider.System), TimeProvider.System, attempts: 1, TimeSpan.FromMilliseconds(10));

    [Theory]
    [InlineData(true)]
    [InlineData(false)]
    public async Task AnAnswerOverTheLimit_IsMalformed_NamingTheLimit(bool withLength)
    {
        // A well-formed challenge answer, padded past 4 MiB: without the cap it would be read whole (and one of any size
        // would be buffered until the agent ran out of memory).
        var padded = Encoding.UTF8.GetBytes($$"""{"data":{"nonce":"AAAA"},"pad":"{{new string('x', KmsClient.MaxResponseBytes)}}"}""");
        await using var kms = await Stub.StartAsync(_kmsCertificate, async context =>
        {
            context.Response.ContentType = "application/json";
            if (withLength)
            {
                context.Response.ContentLength = padded.Length;
                await context.Response.Body.WriteAsync(padded);
                return;
            }

            for (var at = 0; at < padded.Length; at += 64 * 1024)
            {
                await context.Response.Body.WriteAsync(padded.AsMemory(at, Math.Min(64 * 1024, padded.Length - at)));
            }
        });
        using var client = Client(kms.BaseAddress);

        var failed = await Assert.ThrowsAsync<InvalidDataException>(() => client.ChallengeAsync("f", CancellationToken.None));

        Assert.Contains($"larger than {KmsClient.MaxResponseBytes} bytes", failed.Message, StringComparison.Ordinal);
        Assert.Contains("auth/attest/challenge", failed.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task AnErrorAnswerOverTheLimit_KeepsItsStatus_AndAnAnswerWithinItIsRead()
    {
        var big = new string('x', KmsClient.MaxResponseBytes + 1);
        var within = $$"""{"data":{"nonce":"AAAA"},"pad":"{{new string('x', KmsClient.MaxResponseBytes - 100)}}"}""";
        await using var kms = await Stub.StartAsync(_kmsCertificate, async context =>
        {
            if (context.Request.Path == "/v1/missing")
            {
                context.Response.StatusCode = 404;
                await context.Response.WriteAsync(big);
                return;
            }

            await context.Response.WriteAsync(within);
        });
        using var client = Client(kms.BaseAddress);

        var refused = await Assert.ThrowsAsync<KmsCallException>(() => client.SendAsync(HttpMethod.Get, "missing", null, "t", CancellationToken.None));
        Assert.Equal(404, refused.Status);
        Assert.Contains($"larger than {KmsClient.MaxResponseBytes} bytes", refused.Errors, StringComparison.Ordinal);
        Assert.Equal(new byte[] { 0, 0, 0 }, await client.ChallengeAsync("f", CancellationToken.None));
    }

    [Theory]
    [InlineData(307)]
    [InlineData(308)]
    public async Task AStandbysRedirect_IsFollowedToTheActiveNode_WithTheSameMethodTokenAndBody(int status)
    {
        var seen = new ConcurrentQueue<string>();
        await using var active = await Stub.StartAsync(_kmsCertificate, async context =>
        {
            using var reader = new StreamReader(context.Request.Body);
            seen.Enqueue($"{context.Request.Method} {context.Request.Path} token={context.Request.Headers["X-Vault-Token"]} body={await reader.ReadToEndAsync()}");
            await context.Response.WriteAsync("""{"auth":{"lease_duration":60}}""");
        });
        await using var standby = await Stub.StartAsync(_kmsCertificate, RedirectTo(status, _ => new Uri(active.BaseAddress, "v1/auth/token/renew-self")));
        using var client = Client(standby.BaseAddress);

        Assert.Equal(TimeSpan.FromSeconds(60), await client.RenewSelfAsync("token-1", TimeSpan.FromSeconds(60), CancellationToken.None));

        Assert.Equal(["POST /v1/auth/token/renew-self token=token-1 body={\"increment\":\"60s\"}"], seen);
    }

    [Fact]
    public async Task AStandbysRedirect_OfAnEscapedPathAndQuery_IsFollowedToTheSameRequestTarget()
    {
        // "%25" before hex digits, "%2F" and an escaped query: the KMS's standby sends the request target back as it
        // came (VaultDispatcher.RedirectTarget), and the agent must take that for the same path, not refuse it.
        const string path = "secret/data/k%2541%2Fv%25zz?x=%2541&y=a%2Fb";
        var seen = new ConcurrentQueue<string>();
        await using var active = await Stub.StartAsync(_kmsCertificate, context =>
        {
            seen.Enqueue(RawTarget(context));
            return context.Response.WriteAsync("""{"data":{"data":{"v":"named"},"metadata":{"version":1}}}""");
        });
        await using var standby = await Stub.StartAsync(_kmsCertificate, RedirectTo(307, context => new Uri(active.BaseAddress.GetLeftPart(UriPartial.Authority) + RawTarget(context))));
        using var client = Client(standby.BaseAddress);

        Assert.Equal("named", (await client.ReadKvAsync(path, "token-1", CancellationToken.None)).Data["v"]!.GetValue<string>());

        Assert.Equal(["/v1/" + path], seen);
    }

    [Fact]
    public async Task ARedirectThatDecodedTheEscapedPath_IsNotFollowed()
    {
        // What a standby sent before it kept the request target: the decoded path escaped again, "%2541" as "%41",
        // which the active node would read as key "kA...". Another path, so not followed.
        var reached = 0;
        await using var active = await Stub.StartAsync(_kmsCertificate, context =>
        {
            Interlocked.Increment(ref reached);
            return context.Response.WriteAsync("{}");
        });
        await using var standby = await Stub.StartAsync(_kmsCertificate, RedirectTo(307, context => new Uri(active.BaseAddress.GetLeftPart(UriPartial.Authority) + context.Request.Path.ToUriComponent() + context.Request.QueryString.ToUriComponent())));
        using var client = Client(standby.BaseAddress);

        var refused = await Assert.ThrowsAsync<AgentException>(() => client.ReadKvAsync("secret/data/k%2541", "token-1", CancellationToken.None));

        Assert.Contains("to another path than /v1/secret/data/k%2541", refused.Message, StringComparison.Ordinal);
        Assert.Equal(0, reached);
    }

    [Fact]
    public async Task ARedirectToPlainHttp_IsNotFollowed()
    {
        var reached = 0;
        await using var plain = await Stub.StartAsync(null, context =>
        {
            Interlocked.Increment(ref reached);
            return context.Response.WriteAsync("{}");
        });
        await using var standby = await Stub.StartAsync(_kmsCertificate, RedirectTo(307, context => new Uri(plain.BaseAddress, context.Request.Path.Value!.TrimStart('/'))));
        using var client = Client(standby.BaseAddress);

        var refused = await Assert.ThrowsAsync<AgentException>(() => client.RenewSelfAsync("token-1", TimeSpan.FromSeconds(60), CancellationToken.None));

        Assert.Equal(AgentExitCodes.KmsUnavailable, refused.ExitCode);
        Assert.Contains("only https", refused.Message, StringComparison.Ordinal);
        Assert.Equal(0, reached);
    }

    [Fact]
    public async Task ARedirectToAnotherPath_IsNotFollowed()
    {
        var seen = new ConcurrentQueue<string>();
        await using var active = await Stub.StartAsync(_kmsCertificate, context =>
        {
            seen.Enqueue(context.Request.Path.Value!);
            return context.Response.WriteAsync("{}");
        });
        await using var standby = await Stub.StartAsync(_kmsCertificate, RedirectTo(307, _ => new Uri(active.BaseAddress, "v1/sys/policies/acl/x")));
        using var client = Client(standby.BaseAddress);

        var refused = await Assert.ThrowsAsync<AgentException>(() => client.RenewSelfAsync("token-1", TimeSpan.FromSeconds(60), CancellationToken.None));

        Assert.Equal(AgentExitCodes.KmsUnavailable, refused.ExitCode);
        Assert.Contains("another path", refused.Message, StringComparison.Ordinal);
        Assert.Empty(seen);
    }

    [Fact]
    public async Task ARedirectToAServerThePinRefuses_IsRefusedInItsHandshake_BeforeTheTokenIsSent()
    {
        // The pin is the handler's, so it checks every connection, a redirect target's too.
        using var other = Certificate();
        var reached = 0;
        await using var impostor = await Stub.StartAsync(other, context =>
        {
            Interlocked.Increment(ref reached);
            return context.Response.WriteAsync("""{"auth":{"lease_duration":60}}""");
        });
        await using var standby = await Stub.StartAsync(_kmsCertificate, RedirectTo(307, context => new Uri(impostor.BaseAddress, context.Request.Path.Value!.TrimStart('/'))));
        using var client = Client(standby.BaseAddress);

        var refused = await Assert.ThrowsAsync<AgentException>(() => client.RenewSelfAsync("token-1", TimeSpan.FromSeconds(60), CancellationToken.None));

        Assert.Equal(AgentExitCodes.KmsUnavailable, refused.ExitCode);
        Assert.Contains("pinned", refused.Message, StringComparison.Ordinal);
        Assert.Equal(0, reached);
    }

    [Theory]
    [InlineData(301)]
    [InlineData(302)]
    [InlineData(303)]
    public async Task AnotherRedirect_IsNotFollowed(int status)
    {
        var reached = 0;
        await using var active = await Stub.StartAsync(_kmsCertificate, context =>
        {
            Interlocked.Increment(ref reached);
            return context.Response.WriteAsync("""{"auth":{"lease_duration":60}}""");
        });
        await using var standby = await Stub.StartAsync(_kmsCertificate, RedirectTo(status, context => new Uri(active.BaseAddress, context.Request.Path.Value!.TrimStart('/'))));
        using var client = Client(standby.BaseAddress);

        var refused = await Assert.ThrowsAsync<AgentException>(() => client.RenewSelfAsync("token-1", TimeSpan.FromSeconds(60), CancellationToken.None));

        Assert.Contains($"redirect ({status}) that is not followed", refused.Message, StringComparison.Ordinal);
        Assert.Equal(0, reached);
    }

    [Fact]
    public async Task MoreThanThreeRedirects_AreNotFollowed()
    {
        var hops = 0;
        Stub? loop = null;
        await using var standby = loop = await Stub.StartAsync(_kmsCertificate, context =>
        {
            Interlocked.Increment(ref hops);
            context.Response.StatusCode = 307;
            context.Response.Headers.Location = new Uri(loop!.BaseAddress, context.Request.Path.Value!.TrimStart('/')).ToString();
            return Task.CompletedTask;
        });
        using var client = Client(standby.BaseAddress);

        var refused = await Assert.ThrowsAsync<AgentException>(() => client.RenewSelfAsync("token-1", TimeSpan.FromSeconds(60), CancellationToken.None));

        Assert.Contains($"more than {KmsClient.MaxRedirects} times", refused.Message, StringComparison.Ordinal);
        Assert.Equal(KmsClient.MaxRedirects + 1, hops);
    }

    [Fact]
    public async Task AnAgentGivenAStandby_AttestsAndServesThroughItsRedirects()
    {
        // The whole cold start (challenge, login with its body, secret read with the token) through a node that
        // redirects everything to the active one, as an HA standby does.
        using var harness = new AgentHarness("redirected");
        await using var kms = await AgentKms.StartAsync(harness.SimDir);
        await kms.RegisterAsync("redirected", harness.Measurement);
        await kms.PutBundleAsync("redirected", new JsonObject { ["files"] = new JsonObject { ["greeting"] = "v1" } });
        await using var standby = await Stub.StartAsync(kms.Server.TlsCertificate!, RedirectTo(307, context => new Uri(kms.Server.BaseAddress!, context.Request.Path.Value!.TrimStart('/') + context.Request.QueryString)));
        var log = new LogSink();
        var agent = new Agent(harness.Options(standby.BaseAddress, kms.Pin, log), harness.LaunchConfig);
        using var stop = new CancellationTokenSource();
        var run = agent.RunAsync(stop.Token);

        await agent.Ready.WaitAsync(TimeSpan.FromSeconds(60));
        Assert.Equal("v1", File.ReadAllText(Path.Combine(harness.SecretsDir, "greeting")));
        await stop.CancelAsync();
        Assert.Equal(0, await run.WaitAsync(TimeSpan.FromSeconds(30)));
    }

    private static string RawTarget(HttpContext context) => context.Features.Get<Microsoft.AspNetCore.Http.Features.IHttpRequestFeature>()!.RawTarget;

    private static RequestDelegate RedirectTo(int status, Func<HttpContext, Uri> location) => context =>
    {
        context.Response.StatusCode = status;
        context.Response.Headers.Location = location(context).ToString();
        return Task.CompletedTask;
    };

    // A self-signed server certificate for 127.0.0.1, as the KMS's --tls-self one is.
    private static X509Certificate2 Certificate()
    {
        using var key = ECDsa.Create(ECCurve.NamedCurves.nistP256);
        var request = new CertificateRequest("CN=stub-kms", key, HashAlgorithmName.SHA256);
        var san = new SubjectAlternativeNameBuilder();
        san.AddIpAddress(IPAddress.Loopback);
        san.AddDnsName("localhost");
        request.CertificateExtensions.Add(san.Build());
        var now = DateTimeOffset.UtcNow;
        return request.CreateSelfSigned(now.AddHours(-1), now.AddHours(1));
    }

    /// <inheritdoc />
    public void Dispose() => _kmsCertificate.Dispose();

    /// <summary>A server on loopback answering every request with <c>handler</c>: https with the given certificate, plain http without.</summary>
    private sealed class Stub : IAsyncDisposable
    {
        private readonly WebApplication _app;

        private Stub(WebApplication app, Uri baseAddress)
        {
            _app = app;
            BaseAddress = baseAddress;
        }

        public Uri BaseAddress { get; }

        public static async Task<Stub> StartAsync(X509Certificate2? certificate, RequestDelegate handler)
        {
            var builder = WebApplication.CreateSlimBuilder();
            builder.Logging.ClearProviders();
            if (certificate is not null)
            {
                builder.WebHost.UseKestrelHttpsConfiguration();
            }

            builder.WebHost.ConfigureKestrel(k => k.Listen(IPAddress.Loopback, 0, listen =>
            {
                if (certificate is not null)
                {
                    listen.UseHttps(certificate);
                }
            }));
            var app = builder.Build();
            app.Run(handler);
            await app.StartAsync();
            var address = app.Services.GetRequiredService<IServer>().Features.Get<IServerAddressesFeature>()!.Addresses.Single();
            return new Stub(app, new Uri(address + "/"));
        }

        public ValueTask DisposeAsync() => _app.DisposeAsync();
    }
}
