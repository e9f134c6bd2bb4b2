using System.Net.Http.Json;
using System.Security.Cryptography;
using System.Text.Json.Nodes;
using Morphisms.Attestation.Simulated;
using Morphisms.Kms;

namespace Morphisms.Agent.Tests;

/// <summary>
/// A real KMS on loopback with TLS (self-signed until the PKI lands), dev-unsealed, trusting a simulated TEE
/// whose state lives in <see cref="SimDir"/> (the agent loads the same installation from there).
/// </summary>
public sealed class AgentKms : IAsyncDisposable
{
    private AgentKms(KmsServer server, SimulatedTeeAuthority tee, string simDir, HttpClient root)
    {
        Server = server;
        Tee = tee;
        SimDir = simDir;
        Root = root;
    }

    /// <summary>The server.</summary>
    public KmsServer Server { get; }

    /// <summary>The simulated TEE it trusts.</summary>
    public SimulatedTeeAuthority Tee { get; }

    /// <summary>Where the simulated TEE's state is.</summary>
    public string SimDir { get; }

    /// <summary>A root-token client that trusts exactly the KMS certificate.</summary>
    public HttpClient Root { get; }

    /// <summary>SHA-256 of the KMS TLS certificate: the pin while the KMS certificate is self-signed.</summary>
    public byte[] Pin => SHA256.HashData(Server.TlsCertificate!.RawData);

    /// <summary>Starts one; <paramref name="functionCertificateMaxTtl"/> caps function certificates below the KMS default.</summary>
    public static async Task<AgentKms> StartAsync(string simDir, TimeSpan? functionCertificateMaxTtl = null)
    {
        var tee = SimulatedTeeAuthority.LoadOrCreate(simDir, TimeProvider.System);
        var server = new KmsServer(new KmsServerOptions
        {
            Listen = "127.0.0.1:0",
            Storage = "inmem",
            Dev = true,
            Tls = KmsTlsOptions.SelfSigned,
            WarningWriter = TextWriter.Null,
            Attestation = new KmsAttestationOptions { SimulatedTee = tee, TrustSimulatedTee = true },
            FunctionCertificateMaxTtl = functionCertificateMaxTtl ?? KmsServerOptions.DefaultFunctionCertificateMaxTtl,
        });
        await server.StartAsync();
        var thumbprint = server.TlsCertificate!.RawData;
        var handler = new SocketsHttpHandler();
        handler.SslOptions.RemoteCertificateValidationCallback = (_, cert, _, _) => cert is not null && cert.GetRawCertData().AsSpan().SequenceEqual(thumbprint);
        var root = new HttpClient(handler) { BaseAddress = server.BaseAddress };
        root.DefaultRequestHeaders.Add("X-Vault-Token", server.DevCredentials!.RootToken);
        return new AgentKms(server, tee, simDir, root);
    }

    /// <summary>
    /// Registers <paramref name="function"/> (again: changes it) with a simulated SNP measurement, its secret path
    /// (<c>secret/data/FUNCTION</c> unless given) and a policy for its secrets and renew-self.
    /// </summary>
    public async Task RegisterAsync(string function, byte[] snpMeasurement, string tokenTtl = "30s", string tokenMaxTtl = "1h", string? secretPath = null)
    {
        secretPath ??= $"secret/data/{function}";
        var policy = $$"""
            path "secret/data/{{function}}" { capabilities = ["read"] }
            path "{{secretPath}}" { capabilities = ["read"] }
            path "auth/token/renew-self" { capabilities = ["update"] }
            """;
        await Expect(await Root.PutAsJsonAsync($"v1/sys/policies/acl/{function}", new { policy }));
        await Expect(await Root.PutAsJsonAsync($"v1/morphisms/functions/{function}", new
        {
            owners = new[] { "alice@example.com" },
            policies = new[] { function },
            secret_path = secretPath,
            token_ttl = tokenTtl,
            token_max_ttl = tokenMaxTtl,
            simulated = new { snp = new[] { Convert.ToHexStringLower(snpMeasurement) } },
        }));
    }

    /// <summary>Writes a new version of a function's secret bundle (at <c>secret/data/FUNCTION</c> unless <paramref name="path"/> is given).</summary>
    public async Task PutBundleAsync(string function, JsonObject bundle, string? path = null) =>
        await Expect(await Root.PostAsync($"v1/{path ?? $"secret/data/{function}"}", JsonContent.Create(new JsonObject { ["data"] = bundle })));

    /// <summary>The KMS root CA (PEM) as served by <c>sys/attestation</c>.</summary>
    public async Task<string> RootCaPemAsync()
    {
        var nonce = Convert.ToHexStringLower(RandomNumberGenerator.GetBytes(32));
        var body = await Root.GetFromJsonAsync<JsonObject>($"v1/sys/attestation?nonce={nonce}");
        return body!["data"]!["root_ca"]!.GetValue<string>();
    }

    private static async Task Expect(HttpResponseMessage response)
    {
        using var _ = response;
        if (!response.IsSuccessStatusCode)
        {
            throw new InvalidOperationException($"{response.RequestMessage?.RequestUri}: {(int)response.StatusCode} {await response.Content.ReadAsStringAsync()}");
        }
    }

    /// <inheritdoc />
    public async ValueTask DisposeAsync()
    {
        Root.Dispose();
        await Server.DisposeAsync();
        Tee.Dispose();
    }
}
