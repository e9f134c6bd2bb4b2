using System.Net;
using System.Net.Sockets;
using System.Security.Authentication;
using System.Security.Cryptography;
using System.Text.Json.Nodes;
using Morphisms.Cli.Commands.Invoke;
using Morphisms.Cli.Tests.Kms;
using Morphisms.Client.Trust;
using Morphisms.Serving.Gateway;

namespace Morphisms.Cli.Tests.Serving;

/// <summary>
/// <c>morph invoke</c> through the real confidential gateway says what happened — no such function, no ready instance,
/// no gateway, a gateway that answers plain HTTP and so serves no attested function — instead of .NET's "The SSL connection could not be established, see inner exception" or a "Connection
/// refused (NAME.DOMAIN:443)" naming an address it never dialled; a refused certificate stays a refusal whatever the
/// control API lists; and the control API is asked only after a failure.
/// </summary>
public sealed class InvokeFailureTests
{
    private const string Domain = "fn.example";

    [Fact]
    public async Task A_function_the_gateway_has_no_route_for_is_not_deployed()
    {
        // The gateway answers an unknown SNI with the TLS alert unrecognized_name.
        await using var gateway = StartGateway(new NoRoute());
        var (exit, stderr, listed) = await InvokeAsync("nosuch", gateway.LocalEndPoint, deployed: null);

        Assert.Equal(ExitCodes.Rejected, exit);
        Assert.Contains($"morph: no function nosuch is deployed (see `morph ls`): the gateway at {gateway.LocalEndPoint} has no route for nosuch.{Domain}", stderr);
        Assert.DoesNotContain("SSL connection", stderr);
        Assert.Equal(0, listed);
    }

    [Fact]
    public async Task The_control_apis_list_names_the_host_a_function_is_served_at()
    {
        await using var gateway = StartGateway(new NoRoute());
        var (exit, stderr, listed) = await InvokeAsync("signer", gateway.LocalEndPoint, deployed: [Function("signer", "signer.other.example")]);

        Assert.Equal(ExitCodes.Rejected, exit);
        Assert.Contains($"morph: signer is served at signer.other.example, not signer.{Domain}: pass --domain other.example", stderr);
        Assert.Equal(1, listed);
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public async Task A_function_without_a_ready_instance_in_time_points_at_its_logs(bool withList)
    {
        // The gateway waits for an instance (here: one that never comes) and then closes without a TLS answer.
        await using var gateway = StartGateway(new NeverReady(), backendTimeout: TimeSpan.FromMilliseconds(200));
        var (exit, stderr, listed) = await InvokeAsync("signer", gateway.LocalEndPoint, withList ? [Function("signer", $"signer.{Domain}")] : null);

        Assert.Equal(ExitCodes.Rejected, exit);
        Assert.Contains($"morph: no instance of signer was ready in time: the gateway at {gateway.LocalEndPoint} closed the connection before one answered", stderr);
        Assert.Contains("see `morph logs signer`", stderr);
        Assert.DoesNotContain("SSL connection", stderr);
        Assert.Equal(withList ? 1 : 0, listed);
    }

    [Fact]
    public async Task A_closed_connection_for_a_function_the_control_api_does_not_list_is_not_deployed()
    {
        await using var gateway = StartGateway(new NeverReady(), backendTimeout: TimeSpan.FromMilliseconds(200));
        var (_, stderr, _) = await InvokeAsync("gone", gateway.LocalEndPoint, deployed: [Function("signer", $"signer.{Domain}")]);

        Assert.Contains("morph: no function gone is deployed (see `morph ls`)", stderr);
    }

    [Fact]
    public async Task An_unreachable_gateway_is_named_by_the_address_dialled()
    {
        var closed = ClosedPort();
        var (exit, stderr, _) = await InvokeAsync("signer", closed, deployed: null);

        Assert.Equal(ExitCodes.Rejected, exit);
        Assert.Contains($"morph: cannot reach the gateway at {closed}: Connection refused", stderr);
        Assert.DoesNotContain($"signer.{Domain}:443", stderr);
    }

    /// <summary>
    /// The development HTTP-mode gateway answers the ClientHello with a plain HTTP 400: that was reported as a TLS handshake
    /// failing on "a corrupted frame". It is said to be a gateway whose functions are not attested, which morph invoke does
    /// not call; nothing of the request reaches it, in clear or otherwise.
    /// </summary>
    [Fact]
    public async Task A_gateway_that_answers_plain_http_is_said_to_serve_functions_that_are_not_attested()
    {
        var resolver = new NoRoute();
        await using var gateway = new HttpModeGateway(new HttpGatewayOptions { Warnings = TextWriter.Null }, resolver, new RevisionConcurrency());
        await gateway.StartAsync(CancellationToken.None);

        var (exit, stderr, _) = await InvokeAsync("signer", gateway.LocalEndPoint, deployed: null);

        Assert.Equal(ExitCodes.Rejected, exit);
        Assert.Contains($"morph: the gateway at {gateway.LocalEndPoint} answered plain HTTP, not TLS", stderr);
        Assert.Contains("functions (tee: none) are NOT attested; morph invoke calls only attested functions", stderr);
        Assert.Contains($"curl -H 'Host: signer.{Domain}' http://{gateway.LocalEndPoint}/", stderr);
        Assert.Equal(0, resolver.Asked);
    }

    /// <summary>A server that answers the ClientHello with anything else than HTTP is still a failed TLS handshake, not an HTTP-mode gateway.</summary>
    [Fact]
    public async Task A_server_that_answers_neither_tls_nor_http_is_a_failed_handshake()
    {
        using var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        using var stop = new CancellationTokenSource();
        var serving = Task.Run(async () =>
        {
            // The call's connection, then the probe's.
            while (!stop.IsCancellationRequested)
            {
                using var client = await listener.AcceptTcpClientAsync(stop.Token);
                _ = await client.GetStream().ReadAsync(new byte[4096]); // the ClientHello, or its first part
                await client.GetStream().WriteAsync("SSH-2.0-OpenSSH_9.6\r\n"u8.ToArray());
            }
        });

        var (exit, stderr, _) = await InvokeAsync("signer", (IPEndPoint)listener.LocalEndpoint, deployed: null);
        await stop.CancelAsync();
        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => serving);

        Assert.Equal(ExitCodes.Rejected, exit);
        Assert.Contains($"morph: the TLS handshake with signer.{Domain} through the gateway at {listener.LocalEndpoint} failed", stderr);
        Assert.DoesNotContain("plain HTTP", stderr);
    }

    /// <summary>
    /// An instance whose certificate chains to another root is refused, and said so, even when the control API would
    /// have called the function not deployed: a verification failure is never softened into a missing function.
    /// </summary>
    [Fact]
    public async Task A_refused_certificate_stays_refused_whatever_the_control_api_lists()
    {
        using var pinned = TestCertificates.Ca("CN=pinned KMS root");
        using var other = TestCertificates.Ca("CN=another root");
        using var leaf = InvokeRedirectTests.FunctionLeaf(other, "signer", $"signer.{Domain}");
        await using var function = new FakeHttpServer(_ => new FakeHttpServer.Response(200, "ok"), certificate: leaf);
        var (exit, stderr, _) = await InvokeAsync("signer", new IPEndPoint(IPAddress.Loopback, function.Address.Port), deployed: [], root: pinned);

        Assert.Equal(ExitCodes.Rejected, exit);
        Assert.Contains("certificate REFUSED, nothing was sent", stderr);
        Assert.DoesNotContain("deployed", stderr);
        Assert.Empty(function.Requests);
    }

    /// <summary>The same when only the exception tells (a refusal the validator's report did not reach).</summary>
    [Fact]
    public void A_certificate_failure_in_the_exception_is_a_refusal_not_a_missing_function()
    {
        var request = new InvokeRequest("signer", Domain, new IPEndPoint(IPAddress.Loopback, 1), "/", null, null);
        var failure = new HttpRequestException(HttpRequestError.SecureConnectionError, "The SSL connection could not be established, see inner exception.",
            new AuthenticationException("The remote certificate was rejected by the provided RemoteCertificateValidationCallback.", new IOException("tlsv1 unrecognized name")));

        var message = InvokeFailure.Describe(failure, request, deployed: [], TimeSpan.FromMinutes(2));

        Assert.StartsWith($"signer.{Domain}: certificate REFUSED, nothing was sent", message);
    }

    /// <summary>A call that works costs no extra round trip: the control API is asked only after a failure.</summary>
    [Fact]
    public async Task A_call_that_works_does_not_ask_the_control_api()
    {
        using var root = TestCertificates.Ca("CN=pinned KMS root");
        using var leaf = InvokeRedirectTests.FunctionLeaf(root, "signer", $"signer.{Domain}");
        await using var function = new FakeHttpServer(_ => new FakeHttpServer.Response(200, "ok"), certificate: leaf);
        var (exit, stderr, listed) = await InvokeAsync("signer", new IPEndPoint(IPAddress.Loopback, function.Address.Port), deployed: [], root: root);

        Assert.True(exit == ExitCodes.Ok, stderr);
        Assert.Equal(0, listed);
    }

    private static async Task<(int Exit, string Stderr, int Listed)> InvokeAsync(string function, IPEndPoint gateway, JsonArray? deployed, System.Security.Cryptography.X509Certificates.X509Certificate2? root = null)
    {
        using var fallbackRoot = root is null ? TestCertificates.Ca("CN=test KMS root") : null;
        var trust = Trust(root ?? fallbackRoot!);
        // These fakes have no KMS to serve a CRL; revocation is tested with a real KMS (FunctionRevocationEndToEndTests, UpAndInvokeTests).
        var request = new InvokeRequest(function, Domain, gateway, "/", null, null, NoRevocationCheck: true);
        var stderr = new StringWriter();
        var listed = 0;
        Func<CancellationToken, Task<JsonArray?>>? list = deployed is null ? null : _ =>
        {
            listed++;
            return Task.FromResult<JsonArray?>((JsonArray)deployed.DeepClone());
        };
        var exit = await InvokeCommand.RunAsync(trust, request, showAttestation: false, new StringWriter(), stderr, CancellationToken.None, list);
        return (exit, stderr.ToString(), listed);
    }

    internal static KmsTrustRecord Trust(System.Security.Cryptography.X509Certificates.X509Certificate2 root) => new()
    {
        KmsUrl = "https://kms.test",
        RootCaPem = root.ExportCertificatePem(),
        RootCaSha256 = Convert.ToHexStringLower(SHA256.HashData(root.RawData)),
        TlsSpkiSha256 = new string('0', 64),
        Tee = "snp",
        Measurement = "snp:" + new string('0', 96),
        ExpectedMeasurements = ["snp:" + new string('0', 96)],
        Simulated = true,
        VerifiedAt = DateTimeOffset.UtcNow,
    };

    /// <summary>An entry of <c>GET /v1/functions</c> as the control API lists it.</summary>
    private static JsonObject Function(string name, string host) => new()
    {
        ["name"] = name,
        ["host"] = host,
        ["tee"] = "sim",
        ["latest"] = $"{name}-00001",
        ["traffic"] = new JsonArray(new JsonObject { ["revision"] = $"{name}-00001", ["percent"] = 100, ["tag_host"] = null, ["ready"] = 0, ["desired"] = 1, ["standby"] = 0 }),
    };

    private static SniPassthroughGateway StartGateway(IBackendResolver resolver, TimeSpan? backendTimeout = null)
    {
        var gateway = new SniPassthroughGateway(
            new SniGatewayOptions { BackendTimeout = backendTimeout ?? TimeSpan.FromSeconds(30) }, resolver, new RevisionConcurrency());
        gateway.Start();
        return gateway;
    }

    private static IPEndPoint ClosedPort()
    {
        using var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        return (IPEndPoint)listener.LocalEndpoint;
    }

    private sealed class NoRoute : IBackendResolver
    {
        private int _asked;

        /// <summary>How many host names were looked up: a request that reached the gateway would be.</summary>
        public int Asked => Volatile.Read(ref _asked);

        public ValueTask<BackendTarget?> ResolveAsync(string serverName, CancellationToken cancellationToken)
        {
            Interlocked.Increment(ref _asked);
            return ValueTask.FromResult<BackendTarget?>(null);
        }
    }

    /// <summary>A routed function whose instance never becomes ready: the activator holds the connection until the gateway's wait ends.</summary>
    private sealed class NeverReady : IBackendResolver
    {
        public async ValueTask<BackendTarget?> ResolveAsync(string serverName, CancellationToken cancellationToken)
        {
            await Task.Delay(Timeout.Infinite, cancellationToken);
            return null;
        }
    }
}
