using System.Net.Http.Headers;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;

namespace Morphisms.Kms.Tests;

/// <summary>A bare Vault HTTP client for tests: method, path, JSON in, status and JSON out.</summary>
public sealed class VaultHttp(HttpClient http) : IDisposable
{
    /// <summary>The token sent as <c>X-Vault-Token</c> unless a call passes its own.</summary>
    public string? Token { get; set; }

    /// <summary>The underlying client.</summary>
    public HttpClient Http => http;

    /// <summary>Sends a request; <paramref name="body"/> is serialised unless it is a string (sent raw).</summary>
    public async Task<VaultResult> SendAsync(string method, string path, object? body = null, string? token = null, string? contentType = null)
    {
        using var request = new HttpRequestMessage(new HttpMethod(method), "/v1/" + path.TrimStart('/'));
        var t = token ?? Token;
        if (t is not null)
        {
            request.Headers.Add("X-Vault-Token", t);
        }

        if (body is not null)
        {
            var text = body as string ?? JsonSerializer.Serialize(body);
            request.Content = new StringContent(text, Encoding.UTF8);
            request.Content.Headers.ContentType = MediaTypeHeaderValue.Parse(contentType ?? "application/json");
        }

        using var response = await http.SendAsync(request);
        var raw = await response.Content.ReadAsStringAsync();
        JsonNode? json = null;
        if (raw.Length > 0 && response.Content.Headers.ContentType?.MediaType == "application/json")
        {
            json = JsonNode.Parse(raw);
        }

        return new VaultResult((int)response.StatusCode, json as JsonObject, raw);
    }

    /// <summary>GET.</summary>
    public Task<VaultResult> GetAsync(string path, string? token = null) => SendAsync("GET", path, null, token);

    /// <summary>POST with a JSON body.</summary>
    public Task<VaultResult> PostAsync(string path, object? body = null, string? token = null) => SendAsync("POST", path, body ?? new { }, token);

    /// <summary>PUT with a JSON body.</summary>
    public Task<VaultResult> PutAsync(string path, object? body = null, string? token = null) => SendAsync("PUT", path, body ?? new { }, token);

    /// <summary>DELETE.</summary>
    public Task<VaultResult> DeleteAsync(string path, string? token = null) => SendAsync("DELETE", path, null, token);

    /// <summary>LIST.</summary>
    public Task<VaultResult> ListAsync(string path, string? token = null) => SendAsync("LIST", path, null, token);

    /// <inheritdoc />
    public void Dispose() => http.Dispose();
}

/// <summary>A response: status, parsed JSON (when JSON) and raw text.</summary>
public sealed record VaultResult(int Status, JsonObject? Body, string Raw)
{
    /// <summary>The envelope's <c>data</c>.</summary>
    public JsonObject Data => Body?["data"] as JsonObject ?? throw new InvalidOperationException($"no data in {Status}: {Raw}");

    /// <summary>The envelope's <c>auth</c>.</summary>
    public JsonObject Auth => Body?["auth"] as JsonObject ?? throw new InvalidOperationException($"no auth in {Status}: {Raw}");

    /// <summary>The <c>errors</c> array as strings.</summary>
    public List<string> Errors => Body?["errors"] is JsonArray a ? [.. a.Select(e => e!.GetValue<string>())] : [];

    /// <summary>Fails with the body when the status differs.</summary>
    public VaultResult Expect(int status)
    {
        Assert.True(Status == status, $"expected {status}, got {Status}: {Raw}");
        return this;
    }
}
