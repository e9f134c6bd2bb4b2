using System.Collections.Concurrent;
using System.Net;
using Morphisms.Cli.Commands.Invoke;
using Morphisms.Cli.Tests.Kms;
using Morphisms.Serving.Gateway;

namespace Morphisms.Cli.Tests.Serving;

/// <summary>
/// <c>morph invoke FN --tag TAG</c> reaches the tagged revision over verified TLS through the real confidential gateway:
/// the server name it sends is the tag's host <c>TAG-FN.DOMAIN</c>, which the gateway routes by, while the certificate —
/// which names only <c>FN.DOMAIN</c> and <c>REV.FN.DOMAIN</c>, as attest-login issues it — is verified as FN's.
/// </summary>
public sealed class InvokeTagTests
{
    private const string Domain = "fn.example";

    [Fact]
    public async Task A_tag_is_dialled_by_its_host_and_its_certificate_verified_as_the_functions()
    {
        using var root = TestCertificates.Ca("CN=pinned KMS root");
        using var leaf = InvokeRedirectTests.FunctionLeaf(root, "signer", $"signer.{Domain}");
        await using var canary = new FakeHttpServer(_ => new FakeHttpServer.Response(200, "canary"), certificate: leaf);
        var routes = new OneRoute($"canary-signer.{Domain}", new IPEndPoint(IPAddress.Loopback, canary.Address.Port));
        await using var gateway = new SniPassthroughGateway(new SniGatewayOptions(), routes, new RevisionConcurrency());
        gateway.Start();
        // No KMS to serve a CRL here; revocation is tested with a real KMS (FunctionRevocationEndToEndTests, UpAndInvokeTests).
        var request = new InvokeRequest("signer", Domain, gateway.LocalEndPoint, "/", null, null, NoRevocationCheck: true, Tag: "canary");
        var stdout = new StringWriter();
        var stderr = new StringWriter();

        var exit = await InvokeCommand.RunAsync(InvokeFailureTests.Trust(root), request, showAttestation: true, stdout, stderr, CancellationToken.None);

        Assert.True(exit == ExitCodes.Ok, stderr.ToString());
        Assert.Equal([$"canary-signer.{Domain}"], routes.Asked);
        Assert.Contains("function     signer", stdout.ToString());
        Assert.EndsWith("canary\n", stdout.ToString().ReplaceLineEndings("\n"));
        Assert.Equal($"canary-signer.{Domain}", Assert.Single(canary.Requests).Headers["Host"]);
    }

    [Fact]
    public async Task A_tag_the_gateway_does_not_route_is_named_as_a_tag_not_a_missing_function()
    {
        await using var gateway = new SniPassthroughGateway(new SniGatewayOptions(), new OneRoute($"signer.{Domain}", new IPEndPoint(IPAddress.Loopback, 9)), new RevisionConcurrency());
        gateway.Start();
        using var root = TestCertificates.Ca("CN=pinned KMS root");
        var request = new InvokeRequest("signer", Domain, gateway.LocalEndPoint, "/", null, null, NoRevocationCheck: true, Tag: "canary");
        var stderr = new StringWriter();

        var exit = await InvokeCommand.RunAsync(InvokeFailureTests.Trust(root), request, showAttestation: false, new StringWriter(), stderr, CancellationToken.None);

        Assert.Equal(ExitCodes.Rejected, exit);
        Assert.Contains($"morph: no revision of signer is tagged canary (see `morph ls`, and `morph traffic --tag`): the gateway at {gateway.LocalEndPoint} has no route for canary-signer.{Domain}", stderr.ToString());
    }

    /// <summary>A route table of one host name, recording the server names the gateway was asked for.</summary>
    private sealed class OneRoute(string host, IPEndPoint endpoint) : IBackendResolver
    {
        public ConcurrentQueue<string> Asked { get; } = new();

        public ValueTask<BackendTarget?> ResolveAsync(string serverName, CancellationToken cancellationToken)
        {
            Asked.Enqueue(serverName);
            return ValueTask.FromResult(serverName == host ? new BackendTarget("signer-00002", endpoint) : null);
        }
    }
}
