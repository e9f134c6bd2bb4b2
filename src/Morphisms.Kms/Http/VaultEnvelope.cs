using System.Text;
using System.Text.Encodings.Web;
using System.Text.Json;
using System.Text.Json.Nodes;
using Microsoft.AspNetCore.Http;

namespace Morphisms.Kms.Http;

/// <summary>Writes responses in Vault's shapes: the envelope, bare sys objects, <c>{"errors":[...]}</c>, or 204.</summary>
internal static class VaultEnvelope
{
    // Go's encoder (and so Vault) leaves quotes and apostrophes alone; so do we. Bodies are never HTML.
    private static readonly JsonSerializerOptions Json = new() { Encoder = JavaScriptEncoder.UnsafeRelaxedJsonEscaping };

    /// <summary>Writes <paramref name="response"/> (null = 204).</summary>
    public static Task WriteAsync(HttpContext context, string requestId, KmsResponse? response, string mountType, bool head)
    {
        context.Response.Headers.CacheControl = "no-store";
        if (response is null)
        {
            context.Response.StatusCode = StatusCodes.Status204NoContent;
            return Task.CompletedTask;
        }

        context.Response.StatusCode = response.StatusCode;
        if (response.TextBody is { } text)
        {
            context.Response.ContentType = response.ContentType ?? "text/plain; charset=utf-8";
            return head ? Task.CompletedTask : context.Response.WriteAsync(text, Encoding.UTF8);
        }

        JsonObject body;
        if (response.RawBody is { } raw)
        {
            body = raw;
        }
        else
        {
            body = [];
            if (response.MergeDataToTopLevel && response.Data is { } top)
            {
                foreach (var (key, value) in top)
                {
                    body[key] = value?.DeepClone();
                }
            }

            body["request_id"] = requestId;
            body["lease_id"] = "";
            body["renewable"] = false;
            body["lease_duration"] = 0;
            body["data"] = response.Data?.DeepClone();
            body["wrap_info"] = null;
            body["warnings"] = response.Warnings.Count == 0 ? null : JsonValues.Strings(response.Warnings);
            body["auth"] = response.Auth?.DeepClone();
            body["mount_type"] = mountType;
        }

        return WriteJsonAsync(context, body, head);
    }

    /// <summary>Writes <c>{"errors":[...]}</c> with <paramref name="status"/>.</summary>
    public static Task WriteErrorAsync(HttpContext context, int status, IEnumerable<string> errors, bool head = false)
    {
        context.Response.Headers.CacheControl = "no-store";
        context.Response.StatusCode = status;
        return WriteJsonAsync(context, new JsonObject { ["errors"] = JsonValues.Strings(errors) }, head);
    }

    private static Task WriteJsonAsync(HttpContext context, JsonObject body, bool head)
    {
        context.Response.ContentType = "application/json";

        // Some statuses forbid a body; Vault's health check may be asked to answer with one of them.
        if (head || context.Response.StatusCode is StatusCodes.Status204NoContent or StatusCodes.Status304NotModified or < 200)
        {
            return Task.CompletedTask;
        }

        var bytes = JsonSerializer.SerializeToUtf8Bytes(body, Json);
        context.Response.ContentLength = bytes.Length;
        return context.Response.Body.WriteAsync(bytes).AsTask();
    }
}
