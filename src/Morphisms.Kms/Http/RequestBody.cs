using System.Buffers;
using System.Text.Json;
using System.Text.Json.Nodes;
using Microsoft.AspNetCore.Http;

namespace Morphisms.Kms.Http;

/// <summary>Reads and validates a request body: size-limited, JSON, an object (or <c>null</c>, read as none), no duplicate keys.</summary>
internal static class RequestBody
{
    private static readonly JsonDocumentOptions ParseOptions = new() { MaxDepth = 64, AllowDuplicateProperties = false };

    /// <summary>The body as an object (empty when there is no body, or it is a JSON <c>null</c>).</summary>
    /// <exception cref="KmsException">413 when too large, 400 when not a JSON object.</exception>
    public static async Task<JsonObject> ReadAsync(HttpRequest request, long limit, CancellationToken ct)
    {
        if (request.ContentLength > limit)
        {
            await DrainAsync(request, limit, ct).ConfigureAwait(false);
            throw TooLarge(limit);
        }

        // Every request passes through here, so the buffer is pooled: a fresh 16 KiB one per request was the largest
        // source of garbage under login load. Sized from Content-Length when the client sent one (checked above).
        var buffer = ArrayPool<byte>.Shared.Rent((int)Math.Clamp(request.ContentLength ?? InitialBuffer, 1, InitialBuffer * 4));
        var length = 0;
        try
        {
            while (true)
            {
                if (length == buffer.Length)
                {
                    var larger = ArrayPool<byte>.Shared.Rent((int)Math.Min((long)buffer.Length * 2, limit + 1));
                    buffer.AsSpan(0, length).CopyTo(larger);
                    ArrayPool<byte>.Shared.Return(buffer, clearArray: true);
                    buffer = larger;
                }

                var read = await request.Body.ReadAsync(buffer.AsMemory(length), ct).ConfigureAwait(false);
                if (read == 0)
                {
                    break;
                }

                length += read;
                if (length > limit)
                {
                    await DrainAsync(request, limit, ct).ConfigureAwait(false);
                    throw TooLarge(limit);
                }
            }

            return Parse(buffer.AsSpan(0, length));
        }
        finally
        {
            // Cleared: bodies carry secrets, and the pool hands the array to unrelated code next.
            ArrayPool<byte>.Shared.Return(buffer, clearArray: true);
        }
    }

    private const int InitialBuffer = 16 * 1024;

    /// <summary>Parses a body; the error names the position, never echoes the content (it may be a secret).</summary>
    public static JsonObject Parse(ReadOnlySpan<byte> utf8)
    {
        var trimmed = utf8.Trim(" \t\r\n"u8);
        if (trimmed.Length == 0)
        {
            return [];
        }

        JsonNode? node;
        try
        {
            using var doc = JsonDocument.Parse(trimmed.ToArray(), ParseOptions);

            // Go's client.Logical().Write(path, nil) sends `null`, which Vault decodes as no data: an empty body.
            if (doc.RootElement.ValueKind == JsonValueKind.Null)
            {
                return [];
            }

            node = doc.RootElement.ValueKind == JsonValueKind.Object ? JsonObject.Create(doc.RootElement.Clone()) : null;
            if (node is null)
            {
                throw KmsException.BadRequest("request body must be a JSON object");
            }

            // JsonObject materialises lazily; do it here so a malformed body cannot fail later, mid-handler.
            Touch(node);
        }
        catch (JsonException e)
        {
            throw KmsException.BadRequest($"failed to parse JSON input: invalid JSON at line {(e.LineNumber ?? 0) + 1}, byte {(e.BytePositionInLine ?? 0) + 1}");
        }
        catch (ArgumentException)
        {
            throw KmsException.BadRequest("failed to parse JSON input: duplicate key");
        }
        catch (InvalidOperationException)
        {
            // Touch reads every name and string: only an escape no UTF-16 string can hold gets here.
            throw KmsException.BadRequest("failed to parse JSON input: a string or name has an unpaired surrogate escape (\\uD800-\\uDFFF)");
        }

        return (JsonObject)node;
    }

    /// <summary>How much of an oversized body is read and discarded so the client can finish sending and read the 413.</summary>
    public static long DrainLimit(long limit) => Math.Max(limit * 4, 256 * 1024);

    private static async Task DrainAsync(HttpRequest request, long limit, CancellationToken ct)
    {
        // A client still writing when the server closes the connection sees a reset instead of the 413. Reading
        // a bounded amount more avoids that for moderately oversized bodies; bigger ones hit Kestrel's limit.
        if (request.ContentLength > DrainLimit(limit))
        {
            return;
        }

        using var timeout = CancellationTokenSource.CreateLinkedTokenSource(ct);
        timeout.CancelAfter(TimeSpan.FromSeconds(5));
        var sink = new byte[16 * 1024];
        try
        {
            while (await request.Body.ReadAsync(sink, timeout.Token).ConfigureAwait(false) > 0)
            {
            }
        }
        catch (Exception e) when (e is BadHttpRequestException or OperationCanceledException or IOException)
        {
            // Past the drain limit or too slow: answer anyway.
        }
    }

    /// <summary>Materialises every name and string, so that whatever cannot be read fails here.</summary>
    private static void Touch(JsonNode? node)
    {
        switch (node)
        {
            case JsonObject obj:
                foreach (var (_, value) in obj)
                {
                    Touch(value);
                }

                break;
            case JsonArray arr:
                foreach (var item in arr)
                {
                    Touch(item);
                }

                break;
            case JsonValue value when value.GetValueKind() == JsonValueKind.String:
                // JSON allows "\uD800" alone, but no .NET string holds it: reading it later, mid-handler, threw
                // InvalidOperationException (a 500). Read once here, where it is a 400.
                value.GetValue<string>();
                break;
        }
    }

    private static KmsException TooLarge(long limit) => new(413, $"request body too large: the limit is {limit} bytes");
}
