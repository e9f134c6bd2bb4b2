using System.Net.Http.Headers;
using System.Text;
using System.Text.Json.Nodes;
using Morphisms.Attestation.Trust;

namespace Morphisms.Agent.Kms;

/// <summary>
/// The agent's Vault-API client: every connection goes through <see cref="KmsPin"/>, transport failures and
/// transient statuses (429, 5xx) are retried a bounded number of times with doubling delays.
/// </summary>
public sealed class KmsClient : IDisposable
{
    private readonly HttpClient _http;
    private readonly KmsPin _pin;
    private readonly TimeProvider _time;
    private readonly int _attempts;
    private readonly TimeSpan _delay;

    /// <summary>Creates a client for <paramref name="baseAddress"/> (https only).</summary>
    public KmsClient(Uri baseAddress, KmsPin pin, TimeProvider time, int attempts, TimeSpan retryDelay)
    {
        if (baseAddress.Scheme != Uri.UriSchemeHttps)
        {
            throw new ArgumentException("the KMS address must be https: the agent only talks to a KMS whose certificate it can pin", nameof(baseAddress));
        }

        _pin = pin;
        _time = time;
        _attempts = Math.Max(1, attempts);
        _delay = retryDelay;
        var handler = new SocketsHttpHandler
        {
            ConnectTimeout = TimeSpan.FromSeconds(10),
            PooledConnectionLifetime = TimeSpan.FromMinutes(5),
        };
        pin.ApplyTo(handler.SslOptions);
        _http = new HttpClient(handler) { BaseAddress = baseAddress, Timeout = TimeSpan.FromSeconds(30) };
    }

    /// <summary>Asks for a single-use nonce for <paramref name="function"/>.</summary>
    public async Task<byte[]> ChallengeAsync(string function, CancellationToken ct)
    {
        var data = await SendAsync(HttpMethod.Post, "auth/attest/challenge", new JsonObject { ["function"] = function }, null, ct).ConfigureAwait(false);
        var nonce = KmsJson.OptionalString(KmsJson.OptionalObject(data["data"], "data")?["nonce"], "data.nonce") ?? throw new InvalidDataException("challenge response without data.nonce");
        var bytes = new byte[nonce.Length];
        return Convert.TryFromBase64String(nonce, bytes, out var length) && length > 0
            ? bytes[..length]
            : throw new InvalidDataException("challenge response: data.nonce is not base64");
    }

    /// <summary>
    /// Logs in with evidence, sending the request exactly once; a refusal surfaces as a 403 <see cref="KmsCallException"/>.
    /// A transient failure is not retried here: the KMS spends the nonce before it commits the login, so a login whose
    /// answer was lost may have used the nonce up, and the same body again would be refused as a replay. The caller
    /// retries the whole round with a fresh challenge (<see cref="RetryAsync{T}"/>).
    /// </summary>
    public async Task<LoginResult> LoginAsync(JsonObject request, CancellationToken ct)
    {
        var body = await SendOnceAsync(HttpMethod.Post, "auth/attest/login", request, null, ct).ConfigureAwait(false);
        return LoginResult.Parse(body);
    }

    /// <summary>Renews the token; returns the new TTL (capped by the max TTL, which is how the agent sees it coming).</summary>
    public async Task<TimeSpan> RenewSelfAsync(string token, TimeSpan increment, CancellationToken ct)
    {
        var body = await SendAsync(HttpMethod.Post, "auth/token/renew-self", new JsonObject { ["increment"] = $"{(long)increment.TotalSeconds}s" }, token, ct).ConfigureAwait(false);
        var seconds = KmsJson.OptionalInteger(KmsJson.OptionalObject(body["auth"], "auth")?["lease_duration"], "auth.lease_duration") ?? 0;
        return seconds is >= 0 and <= 10 * 365 * 86_400L ? TimeSpan.FromSeconds(seconds) : throw new InvalidDataException($"auth.lease_duration {seconds} is out of range");
    }

    /// <summary>Reads the latest version of a KV v2 secret (<c>MOUNT/data/PATH</c>).</summary>
    public async Task<KvSecret> ReadKvAsync(string path, string token, CancellationToken ct)
    {
        var body = await SendAsync(HttpMethod.Get, path, null, token, ct).ConfigureAwait(false);
        var data = body["data"] as JsonObject ?? throw new InvalidDataException($"KV response for {path} without data");
        var version = KmsJson.OptionalInteger(KmsJson.OptionalObject(data["metadata"], "data.metadata")?["version"], "data.metadata.version") is { } v and >= 0 and <= int.MaxValue ? (int)v : 0;
        var values = data["data"] as JsonObject ?? throw new InvalidDataException($"KV secret {path} has no data (deleted or destroyed)");
        return new KvSecret(version, (JsonObject)values.DeepClone());
    }

    /// <summary>Sends one request with the bounded retry; returns the response JSON (empty for 204).</summary>
    public Task<JsonObject> SendAsync(HttpMethod method, string path, JsonObject? body, string? token, CancellationToken ct) =>
        RetryAsync(path, () => SendOnceAsync(method, path, body, token, ct), ct);

    /// <summary>
    /// Runs <paramref name="attempt"/> with the bounded retry: again after a doubling delay when it fails with a
    /// transport error, a timeout, 429 or 5xx; never after a 4xx or a pin mismatch. <paramref name="what"/> names it in
    /// the error once the attempts are spent.
    /// </summary>
    public async Task<T> RetryAsync<T>(string what, Func<Task<T>> attempt, CancellationToken ct)
    {
        for (var number = 1; ; number++)
        {
            try
            {
                return await attempt().ConfigureAwait(false);
            }
            catch (HttpRequestException e) when (_pin.LastFailure is { } pinFailure)
            {
                // A pin mismatch is not transient: retrying would only ask the same impostor again.
                throw new AgentException(AgentExitCodes.KmsUnavailable, $"refusing the KMS at {_http.BaseAddress}: {pinFailure}", e);
            }
            catch (Exception e) when (number < _attempts && IsTransient(e, ct))
            {
                await Task.Delay(_delay * Math.Pow(2, number - 1), _time, ct).ConfigureAwait(false);
            }
            catch (Exception e) when (IsTransient(e, ct))
            {
                throw new AgentException(AgentExitCodes.KmsUnavailable, $"KMS {_http.BaseAddress} unreachable after {_attempts} attempts ({what}): {e.Message}", e);
            }
        }
    }

    private static bool IsTransient(Exception e, CancellationToken ct) => e switch
    {
        KmsCallException k => k.Transient,
        HttpRequestException => true,
        TaskCanceledException or TimeoutException => !ct.IsCancellationRequested,
        _ => false,
    };

    private async Task<JsonObject> SendOnceAsync(HttpMethod method, string path, JsonObject? body, string? token, CancellationToken ct)
    {
        using var request = new HttpRequestMessage(method, "v1/" + path.TrimStart('/'));
        if (token is not null)
        {
            request.Headers.Add("X-Vault-Token", token);
        }

        if (body is not null)
        {
            request.Content = new StringContent(body.ToJsonString(), Encoding.UTF8);
            request.Content.Headers.ContentType = new MediaTypeHeaderValue("application/json");
        }

        using var response = await _http.SendAsync(request, ct).ConfigureAwait(false);
        var text = await response.Content.ReadAsStringAsync(ct).ConfigureAwait(false);
        JsonObject? json = null;
        try
        {
            json = text.Length == 0 ? null : KmsJson.Parse(text) as JsonObject;
        }
        catch (System.Text.Json.JsonException e) when (response.IsSuccessStatusCode)
        {
            // An answer no field can be read from: malformed, as a missing or mistyped field is.
            throw new InvalidDataException($"the KMS's answer to {path} is not valid JSON: {e.Message}", e);
        }
        catch (System.Text.Json.JsonException)
        {
            // A non-JSON error page: report the status only.
        }

        if (!response.IsSuccessStatusCode)
        {
            var errors = json?["errors"] is JsonArray list ? string.Join("; ", list.Select(x => x?.ToString())) : response.ReasonPhrase ?? "";
            throw new KmsCallException((int)response.StatusCode, path, errors);
        }

        return json ?? [];
    }

    /// <inheritdoc />
    public void Dispose() => _http.Dispose();
}
