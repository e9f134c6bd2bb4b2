using System.Net.Http.Json;
using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;
using System.Text.Json.Nodes;
using Morphisms.Attestation.Simulated;
using Morphisms.Kms;
using Morphisms.Serving.Hosting;

namespace Morphisms.Serving.Tests;

/// <summary>
/// A real KMS on loopback with TLS, dev-unsealed, trusting a simulated TEE whose state lives in <see cref="SimDir"/>
/// (the agents load the same installation). Shared by the end-to-end tests of a class.
/// </summary>
public sealed class ServingKms : IAsyncLifetime
{
    private readonly string _root = Directory.CreateTempSubdirectory("morph-serving-kms-").FullName;
    private SimulatedTeeAuthority? _tee;

    /// <summary>The server.</summary>
    public KmsServer Server { get; private set; } = null!;

    /// <summary>The simulated TEE's state directory.</summary>
    public string SimDir => Path.Combine(_root, "sim");

    /// <summary>A root-token client that trusts exactly the KMS certificate.</summary>
    public HttpClient Root { get; private set; } = null!;

    /// <summary>What the serving host needs: URL, the pin (the KMS TLS certificate is self-signed here) and the root token.</summary>
    public KmsConnection Connection => new()
    {
        Url = Server.BaseAddress!,
        CaSha256 = Convert.ToHexStringLower(SHA256.HashData(Server.TlsCertificate!.RawData)),
        Token = Server.DevCredentials!.RootToken,
    };

    /// <inheritdoc />
    public async Task InitializeAsync()
    {
        _tee = SimulatedTeeAuthority.LoadOrCreate(SimDir, TimeProvider.System);
        Server = new KmsServer(new KmsServerOptions
        {
            Listen = "127.0.0.1:0",
            Storage = "inmem",
            Dev = true,
            Tls = KmsTlsOptions.SelfSigned,
            WarningWriter = TextWriter.Null,
            Attestation = new KmsAttestationOptions { SimulatedTee = _tee, TrustSimulatedTee = true },
        });
        await Server.StartAsync();
        var certificate = Server.TlsCertificate!.RawData;
        var handler = new SocketsHttpHandler();
        handler.SslOptions.RemoteCertificateValidationCallback = (_, cert, _, _) => cert is not null && cert.GetRawCertData().AsSpan().SequenceEqual(certificate);
        Root = new HttpClient(handler) { BaseAddress = Server.BaseAddress };
        Root.DefaultRequestHeaders.Add("X-Vault-Token", Server.DevCredentials!.RootToken);
    }

    /// <summary>Writes a function's secret bundle (the agent refuses to start the app without one).</summary>
    public async Task PutBundleAsync(string function)
    {
        using var response = await Root.PostAsync($"v1/secret/data/{function}", JsonContent.Create(new JsonObject
        {
            ["data"] = new JsonObject { ["files"] = new JsonObject { ["greeting"] = "hi" } },
        }));
        response.EnsureSuccessStatusCode();
    }

    /// <summary>The KMS root CA as <c>sys/attestation</c> serves it: what a client pins after attesting the KMS.</summary>
    public async Task<X509Certificate2> RootCaAsync()
    {
        var nonce = Convert.ToHexStringLower(RandomNumberGenerator.GetBytes(32));
        var body = await Root.GetFromJsonAsync<JsonObject>($"v1/sys/attestation?nonce={nonce}");
        return X509Certificate2.CreateFromPem(body!["data"]!["root_ca"]!.GetValue<string>());
    }

    /// <inheritdoc />
    public async Task DisposeAsync()
    {
        Root.Dispose();
        await Server.DisposeAsync();
        _tee?.Dispose();
        try
        {
            Directory.Delete(_root, recursive: true);
        }
        catch (IOException)
        {
        }
    }
}
