using System.Net.Http.Headers;
using System.Text;
using System.Text.Json.Nodes;
using Morphisms.Attestation.Trust;

namespace Morphisms.Agent.Kms;

/// <summary>
/// The agent's Vault-API client: every connection goes through <see cref="KmsPin"/>, transport failures and
/// transient statuses (429, 5xx) are retried a bounded number of times with doubling delays. An answer is read up to
/// <see cref="MaxResponseBytes"/>.
/// </summary>
/// <remarks>
/// Redirects are not left to <see cref="HttpClient"/>, which would re-send <c>X-Vault-Token</c> and a login's body to
/// wherever a <c>Location</c> points, with another path or after turning a POST into a GET. An HA standby's 307 or 308
/// (an agent given any node's address, or one that was active when the instance started) is followed here, at most
/// <see cref="MaxRedirects"/> times, only to https and only to the same path and query (scheme, host and port may
/// change), as <see cref="KmsRedirect"/> allows (the serving host's registrar and <c>Morphisms.Client</c>'s
/// <c>KmsTlsPin.RedirectKeepsRequest</c> follow the same rule). The standby's <c>Location</c>
/// comes from storage the KMS does not trust; what makes a target safe is the pin, which the handler applies to every
/// connection it makes, redirect targets included, with the host name checked against the target's: a host that is not
/// the pinned KMS fails the handshake and never sees the request.
/// </remarks>
public sealed class KmsClient : IDisposable
{
    /// <summary>
    /// The largest answer read from the KMS: 4 MiB. The largest it sends is a secret bundle, which the KMS's default
    /// request limit (1 MiB) keeps well below that; a bundle written under a raised limit that makes a read answer
    /// longer, or an answer from a KMS that is broken, is a malformed answer (<see cref="InvalidDataException"/>, or a <see cref="KmsCallException"/> for an error status),
    /// not a buffer that grows until the instance runs out of memory.
    /// </summary>
    public const int MaxResponseBytes = 4 * 1024 * 1024;

    /// <summary>How many 307/308 redirects one request follows (an HA standby to the active node is one).</summary>
    public const int MaxRedirects = KmsRedirect.MaxRedirects;

    // For the whole exchange, the answer's body included (HttpClient's own timeout ends when the headers are in).
    private static readonly TimeSpan RequestTimeout = TimeSpan.FromSeconds(30);

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
            AllowAutoRedirect = false,
        };
        pin.ApplyTo(handler.SslOptions);
        _http = new HttpClient(handler) { BaseAddress = baseAddress, Timeout = RequestTimeout };
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
        var target = new Uri(_http.BaseAddress!, "v1/" + path.TrimStart('/'));
        for (var redirects = 0; ; redirects++)
        {
            // A request message cannot be sent twice: each hop builds its own, with the same method, token and body.
            using var request = new HttpRequestMessage(method, target);
            if (token is not null)
            {
                request.Headers.Add("X-Vault-Token", token);
            }

            if (body is not null)
            {
                request.Content = new StringContent(body.ToJsonString(), Encoding.UTF8);
                request.Content.Headers.ContentType = new MediaTypeHeaderValue("application/json");
            }

            HttpResponseMessage response;
            try
            {
                response = await _http.SendAsync(request, HttpCompletionOption.ResponseHeadersRead, ct).ConfigureAwait(false);
            }
            catch (HttpRequestException e) when (redirects > 0 && _pin.LastFailure is { } refused)
            {
                // Refused in the handshake: no byte of the request, the token least of all, went there.
                throw new AgentException(AgentExitCodes.KmsUnavailable, $"the KMS redirected {path} to {target.GetLeftPart(UriPartial.Authority)}, which is not the pinned KMS ({refused}): not followed, nothing was sent there", e);
            }

            using (response)
            {
                if ((int)response.StatusCode is >= 300 and < 400)
                {
                    target = Redirect(path, target, response, redirects);
                    continue;
                }

                return Parse(path, response, await ReadAsync(path, response, ct).ConfigureAwait(false));
            }
        }
    }

    // The next hop of a redirect the agent may follow, or the AgentException (KMS unavailable: no verdict on the instance,
    // retried while running) that says why it may not.
    private static Uri Redirect(string path, Uri target, HttpResponseMessage response, int redirects)
    {
        var status = (int)response.StatusCode;
        var from = target.GetLeftPart(UriPartial.Authority);
        return KmsRedirect.Check(target, response, redirects, out var next) switch
        {
            null => next!,

            // 301/302/303 would turn a POST into a GET without its body: no standby sends them, and no request of the
            // agent means that.
            KmsRedirectRefusal.NotAStandbysRedirect => throw new AgentException(AgentExitCodes.KmsUnavailable, $"the KMS at {from} answered {path} with a redirect ({status}) that is not followed: only a 307 or 308 with a Location is (an HA standby naming the active node)"),
            KmsRedirectRefusal.NotHttps => throw new AgentException(AgentExitCodes.KmsUnavailable, $"the KMS at {from} redirected {path} ({status}) to {next!.GetLeftPart(UriPartial.Authority)}: not followed, since only https can show the pinned certificate (and plain http would carry the token in clear); give the KMS nodes https --api-addr URLs"),

            // A Location with a path would land the token and body on another path of a real, pinned node.
            KmsRedirectRefusal.AnotherRequest => throw new AgentException(AgentExitCodes.KmsUnavailable, $"the KMS at {from} redirected {path} ({status}) to another path than {target.AbsolutePath}: not followed (a standby redirects to the same path on the active node); check the KMS nodes' --api-addr"),
            _ => throw new AgentException(AgentExitCodes.KmsUnavailable, $"the KMS redirected {path} more than {MaxRedirects} times (the last time to {next!.GetLeftPart(UriPartial.Authority)}): not followed"),
        };
    }

    // The answer's body, at most MaxResponseBytes of it, within what is left of RequestTimeout.
    private async Task<string> ReadAsync(string path, HttpResponseMessage response, CancellationToken ct)
    {
        if (response.Content.Headers.ContentLength is > MaxResponseBytes)
        {
            throw TooLarge(path, response);
        }

        using var timeout = new CancellationTokenSource(RequestTimeout, _time);
        using var linked = CancellationTokenSource.CreateLinkedTokenSource(ct, timeout.Token);
        try
        {
            await using var stream = await response.Content.ReadAsStreamAsync(linked.Token).ConfigureAwait(false);
            using var answer = new MemoryStream();
            var buffer = new byte[16 * 1024];
            int read;
            while ((read = await stream.ReadAsync(buffer, linked.Token).ConfigureAwait(false)) > 0)
            {
                if (answer.Length + read > MaxResponseBytes)
                {
                    throw TooLarge(path, response);
                }

                answer.Write(buffer, 0, read);
            }

            return Encoding.UTF8.GetString(answer.GetBuffer(), 0, (int)answer.Length);
        }
        catch (OperationCanceledException e) when (timeout.IsCancellationRequested && !ct.IsCancellationRequested)
        {
            // Transient, as HttpClient's own timeout is.
            throw new TimeoutException($"the KMS's answer to {path} did not arrive within {RequestTimeout.TotalSeconds:0} s", e);
        }
    }

    // A success that long is malformed; an error keeps its status, so a 5xx is still retried.
    private static Exception TooLarge(string path, HttpResponseMessage response)
    {
        var what = $"an answer larger than {MaxResponseBytes} bytes (4 MiB, KmsClient.MaxResponseBytes), not read";
        return response.IsSuccessStatusCode
            ? new InvalidDataException($"the KMS's answer to {path} is {what}")
            : new KmsCallException((int)response.StatusCode, path, what);
    }

    private static JsonObject Parse(string path, HttpResponseMessage response, string text)
    {
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
