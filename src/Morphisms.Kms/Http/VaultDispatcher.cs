using System.Diagnostics;
using System.Text.Json.Nodes;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.Logging;
using Morphisms.Kms.Attest;
using Morphisms.Kms.Audit;
using Morphisms.Kms.Barrier;
using Morphisms.Kms.Functions;
using Morphisms.Kms.Metrics;
using Morphisms.Kms.Sys;
using Morphisms.Kms.Tokens;

namespace Morphisms.Kms.Http;

/// <summary>
/// Vault's request pipeline for everything under <c>/v1/</c>: decode, pick the backend by mount, match the
/// route (404/405), enforce the seal (503), authenticate (403), run the existence check, check the ACL (403),
/// audit, handle, audit, encode. Only unexpected exceptions become a 500, with no internals in the body.
/// </summary>
internal sealed partial class VaultDispatcher(
    KmsCore core, SysBackend sys, TokenBackend tokens, AttestBackend attest, FunctionRegistryBackend functions, KmsMetrics metrics, ILogger<VaultDispatcher> logger)
{
    /// <summary>Handles one request.</summary>
    public async Task HandleAsync(HttpContext context)
    {
        var started = Stopwatch.GetTimestamp();
        var requestId = Guid.NewGuid().ToString();
        var pathClass = "unmatched";
        var head = HttpMethods.IsHead(context.Request.Method);
        try
        {
            pathClass = await DispatchAsync(context, requestId, head).ConfigureAwait(false);
        }
        catch (KmsException e)
        {
            await VaultEnvelope.WriteErrorAsync(context, e.StatusCode, e.Errors, head).ConfigureAwait(false);
        }
        catch (BadHttpRequestException e)
        {
            // Kestrel's own limits (e.g. a body over MaxRequestBodySize) and malformed framing.
            var message = e.StatusCode == StatusCodes.Status413PayloadTooLarge
                ? $"request body too large: the limit is {core.Options.MaxRequestBodyBytes} bytes"
                : "malformed HTTP request";
            await VaultEnvelope.WriteErrorAsync(context, e.StatusCode, [message], head).ConfigureAwait(false);
        }
        catch (HighAvailability.StandbyWriteException e)
        {
            // The node was deposed while handling this request: nothing was written.
            await VaultEnvelope.WriteErrorAsync(context, StatusCodes.Status503ServiceUnavailable, [e.Message], head).ConfigureAwait(false);
        }
        catch (OperationCanceledException) when (context.RequestAborted.IsCancellationRequested)
        {
            // The client went away; nobody is left to answer.
        }
        catch (Exception e)
        {
            LogUnexpected(logger, e, requestId);
            if (!context.Response.HasStarted)
            {
                await VaultEnvelope.WriteErrorAsync(context, StatusCodes.Status500InternalServerError, [$"internal error (request id {requestId})"], head).ConfigureAwait(false);
            }
        }
        finally
        {
            // Label values come from a fixed set so clients cannot grow the metrics without bound.
            var method = context.Request.Method is "GET" or "HEAD" or "POST" or "PUT" or "DELETE" or "PATCH" or "LIST" ? context.Request.Method : "other";
            metrics.Observe(pathClass, method, context.Response.StatusCode, Stopwatch.GetElapsedTime(started));
        }
    }

    /// <summary>The longest request path (after <c>/v1/</c>), in UTF-8 bytes.</summary>
    public const int MaxPathBytes = 1024;

    /// <summary>
    /// Paths become storage keys under a mount's prefix, and PostgreSQL's primary-key index refuses a key of about
    /// 2.7 KB, which a long KV path reached as a 500 after the request was authorised. Capped well below that, with
    /// room for the prefix, so every backend stores what it accepts.
    /// </summary>
    private static void RefuseLongPaths(string path)
    {
        var bytes = System.Text.Encoding.UTF8.GetByteCount(path);
        if (bytes > MaxPathBytes)
        {
            throw KmsException.BadRequest($"invalid path: {bytes} bytes long, over the limit of {MaxPathBytes}");
        }
    }

    /// <summary>
    /// Kestrel decodes percent-escapes in the path, so <c>%0A</c> arrives as a newline. No Vault path has a control
    /// character, and one must never reach routing or the ACL: a route's pattern could match around it while the ACL
    /// looks up a path no rule names (a trailing newline once walked past an exact deny to a wildcard's grant).
    /// </summary>
    private static void RefuseControlCharacters(string path)
    {
        foreach (var c in path)
        {
            if (char.IsControl(c))
            {
                throw KmsException.BadRequest($"invalid path: it contains the control character U+{(int)c:X4}");
            }
        }
    }

    private async Task<string> DispatchAsync(HttpContext context, string requestId, bool head)
    {
        var http = context.Request;
        // The route matches a bare "/v1" too, which has no "/v1/" to cut: it is the empty path, which no backend serves (404).
        var raw = http.Path.Value ?? "";
        var path = raw.Length > "/v1/".Length ? raw["/v1/".Length..] : "";
        RefuseControlCharacters(path);
        RefuseLongPaths(path);
        var operation = OperationFor(http);

        if (http.Headers.ContainsKey("X-Vault-Wrap-TTL"))
        {
            throw KmsException.BadRequest("response wrapping is not supported");
        }

        // Before the body is read: a standby redirects the request as it came.
        if (core.Election is not null && !core.Sealed && !core.Serving && await RedirectedToActiveNodeAsync(context, path).ConfigureAwait(false))
        {
            return "standby-redirect";
        }

        var data = operation is Operation.Read or Operation.List or Operation.Delete
            ? QueryData(http.Query)
            : await RequestBody.ReadAsync(http, core.Options.MaxRequestBodyBytes, context.RequestAborted).ConfigureAwait(false);
        var request = new KmsRequest
        {
            Id = requestId,
            Operation = operation,
            Path = path,
            Data = data,
            ClientToken = TokenOf(http),
            RemoteAddress = context.Connection.RemoteIpAddress?.ToString() ?? "",
            ContentType = http.ContentType,
        };

        var state = core.Acquire();
        try
        {
            request.State = state;
            ILogicalBackend backend;
            string mountPoint;
            try
            {
                (backend, mountPoint) = Resolve(path, state);
            }
            catch (KmsException e) when (e.StatusCode == 404 && state is not null)
            {
                await RefuseUnlessPermittedAsync(request, state, context.RequestAborted).ConfigureAwait(false);
                throw;
            }

            request.MountPoint = mountPoint;
            request.RelativePath = path.Length >= mountPoint.Length ? path[mountPoint.Length..] : "";
            var found = backend.Routes.Find(request.RelativePath);
            if (found is not { } hit)
            {
                if (state is null)
                {
                    throw KmsException.Sealed();
                }

                await RefuseUnlessPermittedAsync(request, state, context.RequestAborted).ConfigureAwait(false);
                throw KmsException.UnsupportedPath(path);
            }

            var (route, match) = hit;
            if (state is null && !route.AllowWhenSealed)
            {
                throw KmsException.Sealed();
            }

            // POST/PUT reach a route that only creates (or only updates) as well: the existence check decides later.
            if (route.HandlerFor(operation) is null && (operation != Operation.Update || route.HandlerFor(Operation.Create) is null))
            {
                if (state is not null && !route.Unauthenticated)
                {
                    await RefuseUnlessPermittedAsync(request, state, context.RequestAborted).ConfigureAwait(false);
                }

                throw KmsException.UnsupportedOperation(head ? "HEAD" : operation.Name(), path);
            }

            var audit = route.AllowWhenSealed ? null : state?.Audit;
            var response = await AuthorizeAndHandleAsync(request, backend, route, match, audit, context.RequestAborted).ConfigureAwait(false);
            await VaultEnvelope.WriteAsync(context, requestId, response, backend.Type, head).ConfigureAwait(false);
            return route.Name;
        }
        finally
        {
            state?.Release();
        }
    }

    /// <summary>
    /// HA, on an unsealed node that is not serving: Vault's standby behaviour. Seal status, health, leader, unseal
    /// and init are answered here; everything else is redirected (307, the path and query as sent) to the active node.
    /// </summary>
    private async Task<bool> RedirectedToActiveNodeAsync(HttpContext context, string path)
    {
        if (path is "sys/health" or "sys/leader" or "sys/seal-status" or "sys/unseal" or "sys/init")
        {
            return false;
        }

        if (core.Election!.IsActive)
        {
            throw new KmsException(503, "this node has just become the active node and is loading its state; retry shortly");
        }

        if (path == "sys/seal")
        {
            throw KmsException.BadRequest("this node is a standby and cannot seal while in standby mode; stop it instead (sys/seal on the active node seals that node)");
        }

        var leader = await core.Election!.CurrentLeaderAsync(context.RequestAborted).ConfigureAwait(false)
            ?? throw new KmsException(503, "this node is a standby and no active node is known right now; retry shortly");

        // The address comes from PostgreSQL, which the KMS does not trust: the client would re-send its token and body there.
        var address = leader.Address ?? throw new KmsException(
            503,
            "this node is a standby and the active node's address in storage failed authentication or is stale: not redirecting there (the kms_ha_leader row was altered or an earlier one written back, it was written by an older KMS version, or the active node's lease lapsed); send this to the active node directly, or retry once a node has become active again");
        var target = RedirectTarget(context.Features.Get<Microsoft.AspNetCore.Http.Features.IHttpRequestFeature>()?.RawTarget)
            ?? throw KmsException.BadRequest("this node is a standby and redirects a request only when its target is a path (origin-form, beginning with \"/\"), not an absolute URL or \"*\": send the path alone, or send the request to the active node directly");
        context.Response.StatusCode = StatusCodes.Status307TemporaryRedirect;
        context.Response.Headers.Location = address.AbsoluteUri.TrimEnd('/') + target;
        context.Response.Headers.CacheControl = "no-store";
        await context.Response.CompleteAsync().ConfigureAwait(false);
        return true;
    }

    /// <summary>
    /// The path and query of a request to redirect, exactly as the client sent them (<paramref name="rawTarget"/>,
    /// Kestrel's request target, still escaped), so the active node decodes the path the client named, once; null when
    /// the target is not origin-form (a path beginning with "/"). The decoded <c>Path</c> cannot be escaped back:
    /// <c>PathString</c> leaves a "%" (sent as "%25") bare when two hex digits follow, so <c>secret/data/a%2541</c>
    /// (key <c>a%41</c>) went out as <c>a%41</c> and was written to key <c>aA</c>.
    /// </summary>
    internal static string? RedirectTarget(string? rawTarget)
    {
        // Appended to the active node's address, only a target that begins with "/" is sure to stay in its path:
        // absolute-form ("GET http://host/v1/..."), which Kestrel accepts, would run into the authority, and Kestrel
        // decoded its path by other rules (%2F too) than the active node decodes an origin-form one. Asterisk-form
        // ("OPTIONS *") has no path to keep.
        if (rawTarget is not ['/', ..])
        {
            return null;
        }

        // Kestrel refuses control characters, spaces and non-ASCII in an HTTP/1 request line, but an HTTP/2 :path is a
        // header value that may hold them, and it takes a "#" as part of the path or query. Escaped (as UTF-8) they
        // mean the same to the active node, and make a valid Location (Kestrel refuses to send a header value with a
        // control character or non-ASCII: the redirect would be a 500) that no "#" cuts short as a fragment.
        if (!rawTarget.Any(NeedsEscaping))
        {
            return rawTarget;
        }

        var escaped = new System.Text.StringBuilder(rawTarget.Length * 3);
        Span<byte> utf8 = stackalloc byte[4];
        for (var i = 0; i < rawTarget.Length; i++)
        {
            if (!NeedsEscaping(rawTarget[i]))
            {
                escaped.Append(rawTarget[i]);
                continue;
            }

            var pair = char.IsHighSurrogate(rawTarget[i]) && i + 1 < rawTarget.Length && char.IsLowSurrogate(rawTarget[i + 1]);
            var length = System.Text.Encoding.UTF8.GetBytes(rawTarget.AsSpan(i, pair ? 2 : 1), utf8);
            i += pair ? 1 : 0;
            foreach (var b in utf8[..length])
            {
                escaped.Append('%').Append(b.ToString("X2", System.Globalization.CultureInfo.InvariantCulture));
            }
        }

        return escaped.ToString();

        static bool NeedsEscaping(char c) => c is <= ' ' or >= '\u007f' or '#';
    }

    /// <summary>
    /// Before a 404 (no such route) or 405 (no such operation): as Vault, only a caller whose token grants the operation
    /// on the path learns that it does not exist; anyone else gets the 403 they would get for an existing path, so the
    /// difference between 404 and 405 does not tell an anonymous caller which mounts and paths exist. The token is
    /// looked up, not used: a miss spends none of a use-limited token's uses.
    /// </summary>
    private static async Task RefuseUnlessPermittedAsync(KmsRequest request, UnsealedState state, CancellationToken ct)
    {
        var token = request.ClientToken is { } t ? await state.Tokens.LookupAsync(t, ct).ConfigureAwait(false) : null;
        if (token is null)
        {
            throw KmsException.PermissionDenied();
        }

        var acl = await state.Policies.AclAsync(token.Policies, ct).ConfigureAwait(false);
        var aclPath = request.Operation == Operation.List && !request.Path.EndsWith('/') ? request.Path + "/" : request.Path;
        if (!acl.Allows(request.Operation, aclPath))
        {
            throw KmsException.PermissionDenied();
        }
    }

    private static async Task<KmsResponse?> AuthorizeAndHandleAsync(KmsRequest request, ILogicalBackend backend, Route route, RouteMatch match, AuditRecorder? audit, CancellationToken ct)
    {
        if (!route.Unauthenticated)
        {
            var state = request.RequireState();
            var token = request.ClientToken is { } t ? await state.Tokens.UseAsync(t, ct).ConfigureAwait(false) : null;
            if (token is null)
            {
                audit?.Request(request, "permission denied");
                throw KmsException.PermissionDenied();
            }

            request.Token = token;
            request.Acl = await state.Policies.AclAsync(token.Policies, ct).ConfigureAwait(false);
            if (request.Operation is Operation.Update && route.Existence is { } exists)
            {
                request.Operation = await exists(request, match, ct).ConfigureAwait(false) ? Operation.Update : Operation.Create;
            }

            var aclPath = request.Operation == Operation.List && !request.Path.EndsWith('/') ? request.Path + "/" : request.Path;
            if (!route.HandlerAuthorizes && !request.Acl.Allows(request.Operation, aclPath, route.Sudo))
            {
                audit?.Request(request, "permission denied");
                throw KmsException.PermissionDenied();
            }

            try
            {
                await Functions.OwnedBundleGuard.CheckAsync(request, backend, ct).ConfigureAwait(false);
            }
            catch (KmsException e)
            {
                audit?.Request(request, string.Join("; ", e.Errors));
                throw;
            }
        }

        audit?.Request(request);
        KmsResponse? response;
        try
        {
            var handler = route.HandlerFor(request.Operation) ?? throw KmsException.UnsupportedOperation(request.Operation.Name(), request.Path);
            response = await handler(request, match, ct).ConfigureAwait(false);
        }
        catch (KmsException e)
        {
            audit?.Response(request, e.StatusCode, null, string.Join("; ", e.Errors));
            throw;
        }
        catch (BarrierException e)
        {
            RecordFailure(audit, request, 500, "stored data failed integrity checks");
            throw new InvalidOperationException("barrier failure", e);
        }
        catch (Exception e) when (audit is not null)
        {
            // Anything else (a storage error such as a full disk, a deposed HA node's refused write, a cancelled
            // request) still gets its response line, as in Vault, so no request line is left without one. The error
            // is generic: an exception's message may carry internals. The exception itself goes on to HandleAsync,
            // which answers it as before.
            var (status, error) = e switch
            {
                HighAvailability.StandbyWriteException => (503, "this KMS node is not the active node: the write was refused"),
                OperationCanceledException when ct.IsCancellationRequested => (499, "the request was cancelled: the client went away"),
                _ => (500, $"internal error (request id {request.Id})"),
            };
            RecordFailure(audit, request, status, error);
            throw;
        }

        if (response is not null && request.Fields.Unused.ToList() is { Count: > 0 } unused && response.RawBody is null)
        {
            response.Warnings.Add("Endpoint ignored these unrecognized parameters: [" + string.Join(" ", unused) + "]");
        }

        audit?.Response(request, response?.StatusCode ?? 204, response, null);
        return response;
    }

    /// <summary>
    /// Writes the response entry of a request whose handler threw something other than a <see cref="KmsException"/>.
    /// If that write fails too (the disk that failed the handler is full, or a seal closed the log), the handler's own
    /// failure is what the client gets: the write's exception is dropped rather than thrown in its place.
    /// </summary>
    private static void RecordFailure(AuditRecorder? audit, KmsRequest request, int status, string error)
    {
        try
        {
            audit?.Response(request, status, null, error);
        }
        catch (Exception)
        {
            // Dropped on purpose: see above.
        }
    }

    /// <summary>
    /// Authorises an authenticated request again, as if it had just arrived, for a handler that answers long after
    /// dispatch (a KV long-poll read parks for up to five minutes): its token must still be valid (not revoked, expired
    /// or used up; no further use is counted), and the token's policies as they are now, and the owned-bundle guard,
    /// must still allow the operation on the path. Only for routes that need no <c>sudo</c>.
    /// </summary>
    /// <exception cref="KmsException">403, as a fresh request would get.</exception>
    internal static async Task ReauthorizeAsync(KmsRequest request, ILogicalBackend backend, CancellationToken ct)
    {
        var state = request.RequireState();
        var token = request.Token is { } t ? await state.Tokens.LookupValidAsync(t.Hash, ct).ConfigureAwait(false) : null;
        if (token is null)
        {
            throw KmsException.PermissionDenied();
        }

        request.Token = token;
        request.Acl = await state.Policies.AclAsync(token.Policies, ct).ConfigureAwait(false);
        if (!request.Acl.Allows(request.Operation, request.Path))
        {
            throw KmsException.PermissionDenied();
        }

        await Functions.OwnedBundleGuard.CheckAsync(request, backend, ct).ConfigureAwait(false);
    }

    private (ILogicalBackend Backend, string MountPoint) Resolve(string path, UnsealedState? state)
    {
        if (path.StartsWith("sys/", StringComparison.Ordinal))
        {
            return (sys, "sys/");
        }

        if (path.StartsWith("auth/token/", StringComparison.Ordinal))
        {
            return (tokens, "auth/token/");
        }

        if (path.StartsWith("auth/attest/", StringComparison.Ordinal))
        {
            return (attest, "auth/attest/");
        }

        if (path.StartsWith("morphisms/", StringComparison.Ordinal))
        {
            return (functions, "morphisms/");
        }

        if (state is null)
        {
            throw KmsException.Sealed();
        }

        if (state.Mounts.Resolve(path) is { } mount)
        {
            return (mount.Backend, mount.Entry.Path);
        }

        throw new KmsException(404, $"no handler for route \"{path}\". route entry not found.");
    }

    private static Operation OperationFor(HttpRequest http)
    {
        var method = http.Method;
        if (HttpMethods.IsGet(method) || HttpMethods.IsHead(method))
        {
            var list = http.Query["list"].ToString();
            return list is "true" or "1" ? Operation.List : Operation.Read;
        }

        if (HttpMethods.IsPost(method) || HttpMethods.IsPut(method))
        {
            return Operation.Update;
        }

        if (HttpMethods.IsDelete(method))
        {
            return Operation.Delete;
        }

        if (HttpMethods.IsPatch(method))
        {
            return Operation.Patch;
        }

        if (method == "LIST")
        {
            return Operation.List;
        }

        throw new KmsException(405, $"unsupported method {(method.Length <= 16 && method.All(char.IsAsciiLetter) ? method : "")}".TrimEnd());
    }

    private static JsonObject QueryData(IQueryCollection query)
    {
        var data = new JsonObject();
        foreach (var (key, values) in query)
        {
            if (key is not ("list" or "help"))
            {
                data[key] = values.Count > 0 ? values[0] : "";
            }
        }

        return data;
    }

    private static string? TokenOf(HttpRequest http)
    {
        var token = http.Headers["X-Vault-Token"].ToString();
        if (token.Length == 0)
        {
            var authorization = http.Headers.Authorization.ToString();
            if (authorization.StartsWith("Bearer ", StringComparison.OrdinalIgnoreCase))
            {
                token = authorization["Bearer ".Length..].Trim();
            }
        }

        return token.Length == 0 ? null : token;
    }

    [LoggerMessage(Level = LogLevel.Error, Message = "unexpected failure handling request {RequestId}")]
    private static partial void LogUnexpected(ILogger logger, Exception exception, string requestId);
}
