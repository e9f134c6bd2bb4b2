using System.Net.Http.Json;
using System.Text.Json.Nodes;
using Morphisms.Attestation.Trust;
using Morphisms.Serving.Revisions;
using Morphisms.Serving.Spec;

namespace Morphisms.Serving.Hosting;

/// <summary>
/// Registers a function's revisions with the KMS function registry: a policy that lets its instances read their
/// secret bundle and renew their token, and the simulated measurements of all its live revisions in one write
/// (the registry keeps only the latest write active, and two revisions split traffic at once). Hardware TEEs'
/// reference values cannot be computed here; those are registered by their owners (<c>morph kms function register</c>).
/// The host trusts the KMS only through the pin, never through the system trust store.
/// </summary>
public sealed class KmsRegistrar : IDisposable
{
    private readonly HttpClient _http;
    private readonly KmsPin _pin;

    /// <summary>Creates a client for <paramref name="kms"/>.</summary>
    public KmsRegistrar(KmsConnection kms, TimeProvider time)
    {
        ArgumentNullException.ThrowIfNull(kms);

        // The same check as the agents' (the chain must validate up to the pinned CA, and the name must match): this
        // connection carries a token that may write policies, so an impostor must not get as far as a request.
        _pin = new KmsPin(Convert.FromHexString(kms.CaSha256), time);
        // Redirects are followed in SendAsync, not by HttpClient: it would re-send X-Vault-Token (it strips only
        // Authorization) to any path a Location names on a node the pin accepts, or turn a PUT into a GET.
        var handler = new SocketsHttpHandler { AllowAutoRedirect = false };
        _pin.ApplyTo(handler.SslOptions);
        _http = new HttpClient(handler) { BaseAddress = kms.Url, Timeout = TimeSpan.FromSeconds(15) };
        _http.DefaultRequestHeaders.Add("X-Vault-Token", kms.Token);
    }

    /// <summary>The policy name the host writes for <paramref name="function"/>.</summary>
    public static string PolicyName(string function) => $"morph-fn-{function}";

    /// <summary>Registers <paramref name="revisions"/> (all of one function) and returns a note for the deploy output.</summary>
    /// <exception cref="InvalidOperationException">The secret path is not a plain KV v2 data path (nothing is sent), or the KMS refused; the message says which.</exception>
    public async Task<KmsRegistration> RegisterAsync(IReadOnlyList<Revision> revisions, CancellationToken ct)
    {
        var latest = revisions[^1].Spec;
        var secretPath = latest.Secrets ?? DefaultSecretPath(latest.Name);
        if (!KvSecretPath.IsValid(secretPath))
        {
            // The loader already refuses such a spec; this guards specs built in code, since the path is pasted into
            // the policy text and a quote, brace or glob in it would add or widen rules.
            throw new InvalidOperationException($"refusing to register {latest.Name}: its secret path '{secretPath}' is not {KvSecretPath.Description}");
        }

        var simulated = revisions.Where(r => r.Spec.Tee == FunctionTee.Sim).Select(r => r.Measurement).Distinct().ToList();
        if (simulated.Count == 0)
        {
            // The agent reads where the KMS names at login, so a custom path must be in the registration too.
            return new KmsRegistration($"{latest.Tee.ToString().ToLowerInvariant()}: register the hardware reference values with 'morph kms function register'"
                + (latest.Secrets is { } custom ? $", with --secret-path {custom} (instances read their bundle where the KMS names)" : ""), LoginsAwaitApproval: false);
        }

        // An owned function keeps the path its owners approved until they approve another, and the KMS names that one at
        // login meanwhile: the policy must let the running code read it, or a proposed move would cut it off its bundle.
        var readable = new List<string> { secretPath };
        if (await ApprovedPathAsync(latest.Name, ct).ConfigureAwait(false) is { } approved && approved != secretPath)
        {
            readable.Add(approved);
        }

        var policy = string.Concat(readable.Select(path => $$"""
            path "{{path}}" { capabilities = ["read"] }

            """)) + """
            path "auth/token/renew-self" { capabilities = ["update"] }
            path "auth/token/lookup-self" { capabilities = ["read"] }
            """;
        await SendAsync(HttpMethod.Put, $"v1/sys/policies/acl/{PolicyName(latest.Name)}", new JsonObject { ["policy"] = policy }, ct).ConfigureAwait(false);
        var body = await SendAsync(HttpMethod.Put, $"v1/morphisms/functions/{latest.Name}", new JsonObject
        {
            ["policies"] = new JsonArray(PolicyName(latest.Name)),
            ["secret_path"] = secretPath,
            ["simulated"] = new JsonObject { ["snp"] = new JsonArray([.. simulated.Select(m => JsonValue.Create(m))]) },
        }, ct).ConfigureAwait(false);
        var data = body?["data"] as JsonObject;
        return new KmsRegistration(Note(latest.Name, data) ?? $"registered {simulated.Count} simulated measurement(s) with the KMS", LoginsAwaitApproval(data));
    }

    // Where a function without a secrets path reads its bundle: the agent's default, and the KMS's for a registration without one.
    private static string DefaultSecretPath(string function) => $"secret/data/{function}";

    /// <summary>
    /// The path an owned function's registration holds (its instances are told it at login), when it differs from what
    /// a write would make it; null for a new function or one without owner approvals, whose path a write replaces at once.
    /// </summary>
    private async Task<string?> ApprovedPathAsync(string function, CancellationToken ct)
    {
        // A token that may write the registry but not read it learns nothing here, and the policy grants the spec's path only.
        var data = (await SendAsync(HttpMethod.Get, $"v1/morphisms/functions/{function}", null, ct, absentOrForbiddenIsNull: true).ConfigureAwait(false))?["data"];
        if (data?["approvals_required"] is not JsonValue approvals || !approvals.TryGetValue<int>(out var required) || required == 0)
        {
            return null;
        }

        var path = data["secret_path"] is JsonValue named && named.TryGetValue<string>(out var value) ? value : DefaultSecretPath(function);

        // Pasted into the policy text like the spec's path, so held to the same form; one in another form is not granted.
        return KvSecretPath.IsValid(path) ? path : null;
    }

    /// <summary>
    /// Deletes the function from the registry, so its instances can no longer log in; returns the KMS's note when it
    /// keeps the name for the function's owners (a tombstone), else null.
    /// </summary>
    public async Task<string?> UnregisterAsync(string function, CancellationToken ct)
    {
        var body = await SendAsync(HttpMethod.Delete, $"v1/morphisms/functions/{function}", null, ct).ConfigureAwait(false);
        return body?["data"]?["tombstone"] is JsonValue tombstone && tombstone.TryGetValue<bool>(out var kept) && kept
            ? $"the KMS keeps the name {function} for its owners: deploying other code under it needs their approval"
            : null;
    }

    /// <summary>
    /// Whether the KMS holds the new reference values as a pending update (or the name for a deleted function's owners),
    /// so the new revision's instances cannot log in until the owners approve; a proposed secret path alone does not stop
    /// the approved code from logging in.
    /// </summary>
    private static bool LoginsAwaitApproval(JsonObject? data) =>
        data?["pending_update"]?["id"] is JsonValue
        && (data["deleted_time"] is not null || data["pending_update"]?["reference_values"] is not null || data["pending_update"]?["secret_path"] is not JsonValue);

    /// <summary>The deploy note when the KMS made the registration a pending update (owners must approve it), else null.</summary>
    private static string? Note(string function, JsonObject? data)
    {
        if (data?["pending_update"]?["id"] is not JsonValue update)
        {
            return null;
        }

        var id = update.ToJsonString();
        var approve = $"morphisms/functions/{function}/updates/{id}/approve";
        if (data["deleted_time"] is null && data["pending_update"]?["reference_values"] is null && data["pending_update"]?["secret_path"] is JsonValue path)
        {
            // The code is the approved one, so its instances still log in: only the path the KMS names them waits.
            return $"the new secret path {path.GetValue<string>()} is proposed update {id}: the function's owners must approve it ({approve}); "
                + $"until then the KMS names the approved path ({data["secret_path"]?.GetValue<string>() ?? "none"}) at login";
        }

        var what = data["deleted_time"] is null ? "registered as" : $"{function} was deleted and its owners keep the name: registering it again is";
        return $"{what} proposed update {id}: the function's owners must approve it ({approve}) before instances can log in";
    }

    /// <inheritdoc />
    public void Dispose() => _http.Dispose();

    private async Task<JsonObject?> SendAsync(HttpMethod method, string path, JsonObject? body, CancellationToken ct, bool absentOrForbiddenIsNull = false)
    {
        var target = new Uri(_http.BaseAddress!, path);
        HttpResponseMessage sent;
        for (var redirects = 0; ; redirects++)
        {
            // A request message cannot be sent twice: each hop builds its own, with the same method and body.
            using var request = new HttpRequestMessage(method, target) { Content = body is null ? null : JsonContent.Create(body) };
            try
            {
                sent = await _http.SendAsync(request, ct).ConfigureAwait(false);
            }
            catch (HttpRequestException e) when (_pin.LastFailure is { } refused)
            {
                // Refused in the handshake: no byte of the request, the token least of all, went there.
                throw new InvalidOperationException(redirects == 0
                    ? $"refusing the KMS at {_http.BaseAddress}: {refused}"
                    : $"the KMS redirected {method} {path} to {target.GetLeftPart(UriPartial.Authority)}, which is not the pinned KMS ({refused}): not followed, nothing was sent there", e);
            }

            if ((int)sent.StatusCode is not (>= 300 and < 400))
            {
                break;
            }

            // An HA standby's 307/308 to its active node, as the agent follows it (KmsRedirect); nothing else.
            using var redirect = sent;
            var from = target.GetLeftPart(UriPartial.Authority);
            var status = (int)redirect.StatusCode;
            target = KmsRedirect.Check(target, redirect, redirects, out var next) switch
            {
                null => next!,
                KmsRedirectRefusal.NotAStandbysRedirect => throw new InvalidOperationException($"KMS {method} {path}: {from} answered with a redirect ({status}) that is not followed: only a 307 or 308 with a Location is (an HA standby naming the active node)"),
                KmsRedirectRefusal.NotHttps => throw new InvalidOperationException($"KMS {method} {path}: {from} redirected ({status}) to {next!.GetLeftPart(UriPartial.Authority)}: not followed, since only https can show the pinned certificate (and plain http would carry the token in clear); give the KMS nodes https --api-addr URLs"),
                KmsRedirectRefusal.AnotherRequest => throw new InvalidOperationException($"KMS {method} {path}: {from} redirected ({status}) to another path than {target.AbsolutePath}: not followed (a standby redirects to the same path on the active node); check the KMS nodes' --api-addr"),
                _ => throw new InvalidOperationException($"KMS {method} {path}: redirected more than {KmsRedirect.MaxRedirects} times (the last time to {next!.GetLeftPart(UriPartial.Authority)}): not followed"),
            };
        }

        using var response = sent;
        if (absentOrForbiddenIsNull && response.StatusCode is System.Net.HttpStatusCode.NotFound or System.Net.HttpStatusCode.Forbidden)
        {
            return null;
        }

        var text = await response.Content.ReadAsStringAsync(ct).ConfigureAwait(false);
        if (!response.IsSuccessStatusCode)
        {
            throw new InvalidOperationException($"KMS {method} {path}: {(int)response.StatusCode} {text}");
        }

        return text.Length == 0 ? null : JsonNode.Parse(text) as JsonObject;
    }
}

/// <summary>What registering a function's revisions with the KMS did.</summary>
/// <param name="Note">One line for the deploy's answer and log.</param>
/// <param name="LoginsAwaitApproval">The newest revision's instances cannot log in until the function's owners approve the update.</param>
public sealed record KmsRegistration(string Note, bool LoginsAwaitApproval);
