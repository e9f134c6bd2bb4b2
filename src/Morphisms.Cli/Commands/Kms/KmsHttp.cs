using System.Net.Http.Headers;
using System.Net.Security;
using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;

namespace Morphisms.Cli.Commands.Kms;

/// <summary>
/// A small Vault-API client for <c>morph kms</c>: JSON in, status and JSON out, the token in <c>X-Vault-Token</c>.
/// Failures become <see cref="KmsCliException"/>s: a 400 is the user's input (exit 2), anything else a refusal or
/// failure (exit 1).
/// </summary>
public sealed class KmsHttp : IDisposable
{
    private readonly HttpClient _http;
    private readonly string? _token;

    /// <summary>Creates a client for <paramref name="address"/>; <paramref name="caFile"/> replaces the system trust for TLS.</summary>
    /// <exception cref="KmsCliException">The CA file cannot be read.</exception>
    public KmsHttp(Uri address, string? token, string? caFile)
    {
        Address = address;
        _token = token;
        var handler = new SocketsHttpHandler();
        if (caFile is not null)
        {
            var roots = LoadCertificates(caFile);
            handler.SslOptions.RemoteCertificateValidationCallback = (_, certificate, _, errors) => Trusted(certificate, errors, roots);
        }

        _http = new HttpClient(handler) { BaseAddress = address, Timeout = TimeSpan.FromSeconds(30) };
    }

    /// <summary>The KMS base URL.</summary>
    public Uri Address { get; }

    /// <summary>Sends a request and returns the reply; statuses in <paramref name="accept"/> besides 2xx are not failures.</summary>
    /// <exception cref="KmsCliException">The KMS is unreachable, or answered with an error status.</exception>
    public async Task<KmsReply> SendAsync(string method, string path, JsonObject? body, CancellationToken ct, bool authenticated = true, params int[] accept)
    {
        using var request = new HttpRequestMessage(new HttpMethod(method), "v1/" + path);
        if (authenticated && _token is not null)
        {
            request.Headers.Add("X-Vault-Token", _token);
        }

        if (body is not null)
        {
            request.Content = new StringContent(body.ToJsonString(), Encoding.UTF8);
            request.Content.Headers.ContentType = new MediaTypeHeaderValue("application/json");
        }

        HttpResponseMessage response;
        try
        {
            response = await _http.SendAsync(request, ct).ConfigureAwait(false);
        }
        catch (HttpRequestException e)
        {
            throw new KmsCliException(ExitCodes.Rejected, $"cannot reach the KMS at {Address}: {e.Message}");
        }
        catch (TaskCanceledException) when (!ct.IsCancellationRequested)
        {
            throw new KmsCliException(ExitCodes.Rejected, $"the KMS at {Address} did not answer in time");
        }

        using (response)
        {
            var raw = await response.Content.ReadAsStringAsync(ct).ConfigureAwait(false);
            var status = (int)response.StatusCode;
            var json = Parse(raw);
            if (status < 300 || accept.Contains(status))
            {
                return new KmsReply(status, json, raw);
            }

            var errors = json?["errors"] is JsonArray list ? string.Join("; ", list.Select(e => e?.ToString())) : "";
            var message = $"the KMS answered {status}{(errors.Length > 0 ? ": " + errors : string.Empty)}";
            throw new KmsCliException(status == 400 ? ExitCodes.UsageOrInput : ExitCodes.Rejected, message, raw.Length > 0 ? raw : null);
        }
    }

    /// <inheritdoc />
    public void Dispose() => _http.Dispose();

    private static JsonObject? Parse(string raw)
    {
        try
        {
            return raw.Length == 0 ? null : JsonNode.Parse(raw) as JsonObject;
        }
        catch (JsonException)
        {
            return null;
        }
    }

    private static X509Certificate2Collection LoadCertificates(string file)
    {
        try
        {
            var certificates = new X509Certificate2Collection();
            certificates.ImportFromPemFile(file);
            return certificates.Count > 0 ? certificates : throw KmsCliException.Usage($"--ca-cert: {file} holds no PEM certificate");
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException or CryptographicException)
        {
            throw KmsCliException.Usage($"--ca-cert: {e.Message}");
        }
    }

    private static bool Trusted(X509Certificate? presented, SslPolicyErrors errors, X509Certificate2Collection roots)
    {
        // The given file replaces the system roots, but the name must still match the address.
        if (presented is null || errors.HasFlag(SslPolicyErrors.RemoteCertificateNameMismatch) || errors.HasFlag(SslPolicyErrors.RemoteCertificateNotAvailable))
        {
            return false;
        }

        using var certificate = X509CertificateLoader.LoadCertificate(presented.GetRawCertData());
        using var chain = new X509Chain();
        chain.ChainPolicy.TrustMode = X509ChainTrustMode.CustomRootTrust;
        chain.ChainPolicy.CustomTrustStore.AddRange(roots);
        chain.ChainPolicy.RevocationMode = X509RevocationMode.NoCheck;
        return chain.Build(certificate);
    }
}

/// <summary>A KMS reply.</summary>
/// <param name="Status">HTTP status.</param>
/// <param name="Body">The JSON body, when there is one.</param>
/// <param name="Raw">The body as text.</param>
public sealed record KmsReply(int Status, JsonObject? Body, string Raw)
{
    /// <summary>The envelope's <c>data</c> object (empty when absent).</summary>
    public JsonObject Data => Body?["data"] as JsonObject ?? [];
}
