using System.Text.Json;
using System.Text.Json.Nodes;
using Morphisms.Kms.Http;
using Morphisms.Kms.Tokens;

namespace Morphisms.Kms.Audit;

/// <summary>
/// Turns requests and responses into audit entries shaped like Vault's file audit device. Every value in
/// request and response data, and every token and accessor, is replaced by its <c>hmac-sha256:</c> hash;
/// field names, paths, policies, status codes and error messages (which never carry secrets) stay readable.
/// Data with more than <see cref="MaxHashedLeaves"/> values is not hashed value by value (see <see cref="AddData"/>).
/// </summary>
internal sealed class AuditRecorder(AuditLog log, AuditKeys keys) : IDisposable
{
    /// <summary>The file device's path, for sys/audit.</summary>
    public string FilePath => log.Path;

    /// <summary>The log's last entry (see <see cref="AuditLog.Head"/>), for <c>sys/audit-verify</c>.</summary>
    public (long Sequence, string Hash) Head => log.Head;

    /// <summary>The value-hashing keys.</summary>
    public AuditKeys Keys => keys;

    /// <summary>Records a request before it is handled (or when it is refused).</summary>
    public void Request(KmsRequest request, string? error = null)
    {
        var entry = new JsonObject
        {
            ["type"] = "request",
            ["auth"] = AuthOf(request.Token),
            ["request"] = RequestOf(request),
        };
        if (error is not null)
        {
            entry["error"] = error;
        }

        Append(entry);
    }

    /// <summary>Records the response (or the error) of a request.</summary>
    public void Response(KmsRequest request, int status, KmsResponse? response, string? error)
    {
        var body = new JsonObject { ["status"] = status };
        if (response?.Data is { } data)
        {
            AddData(body, data);
        }

        if (response?.Auth is { } auth)
        {
            var hashed = auth.DeepClone().AsObject();
            foreach (var secretField in new[] { "client_token", "accessor" })
            {
                if (hashed[secretField] is JsonValue v && v.GetValueKind() == JsonValueKind.String)
                {
                    hashed[secretField] = keys.Hash(v.GetValue<string>());
                }
            }

            body["auth"] = hashed;
        }

        if (response is { Warnings.Count: > 0 })
        {
            body["warnings"] = JsonValues.Strings(response.Warnings);
        }

        var entry = new JsonObject
        {
            ["type"] = "response",
            ["auth"] = AuthOf(request.Token),
            ["request"] = RequestOf(request),
            ["response"] = body,
        };
        if (error is not null)
        {
            entry["error"] = error;
        }

        Append(entry);
    }

    /// <summary>
    /// Records a security event of an auth method (an attestation login accepted or refused) with its details in
    /// plain text: callers pass only non-secret values (names, measurements, reasons) and hash anything else first.
    /// </summary>
    public void Event(string type, KmsRequest request, JsonObject details)
    {
        var entry = new JsonObject
        {
            ["type"] = type,
            ["request"] = new JsonObject
            {
                ["id"] = request.Id,
                ["operation"] = request.Operation.Name(),
                ["path"] = request.Path,
                ["remote_address"] = request.RemoteAddress,
            },
        };
        foreach (var (key, value) in details)
        {
            entry[key] = value?.DeepClone();
        }

        Append(entry);
    }

    /// <summary>Records a free-form notice (seal, rotation).</summary>
    public void Notice(string notice) => Append(new JsonObject { ["type"] = "notice", ["notice"] = notice });

    /// <summary>Closes the log file.</summary>
    public void Dispose() => log.Dispose();

    /// <summary>Replaces every leaf value with its HMAC, keeping the shape.</summary>
    public JsonNode? HashStructure(JsonNode? node) => node switch
    {
        null => null,
        JsonObject obj => new JsonObject([.. obj.Select(p => new KeyValuePair<string, JsonNode?>(p.Key, HashStructure(p.Value)))]),
        JsonArray arr => new JsonArray([.. arr.Select(HashStructure)]),
        JsonValue v when v.GetValueKind() == JsonValueKind.String => keys.Hash(v.GetValue<string>()),
        JsonValue v => keys.Hash(v.ToJsonString()),
        _ => null,
    };

    /// <summary>
    /// How many values a request's or response's data may have and still be hashed one by one. Each value becomes a
    /// 76-character HMAC whatever its size, so without a bound a 1 MiB body of <c>0,0,0,…</c> (about 500,000 values,
    /// sent without a token: it is audited before the token check) wrote some 40 MB per entry, twice per request.
    /// 1,000 values keep an entry's hashes under about 80 KB; ordinary requests and responses have far fewer.
    /// </summary>
    internal const int MaxHashedLeaves = 1000;

    /// <summary>The text whose HMAC stands for data too large to hash value by value: compact JSON, as <c>jq -c</c> prints it.</summary>
    private static readonly JsonSerializerOptions CompactJson = new() { Encoder = System.Text.Encodings.Web.JavaScriptEncoder.UnsafeRelaxedJsonEscaping };

    /// <summary>
    /// Sets <c>data</c> on an entry's request or response object: the data with each value hashed, or, past
    /// <see cref="MaxHashedLeaves"/> values, <c>data_truncated: true</c> and <c>data_hash</c>, the HMAC of the whole
    /// data as compact JSON, so an entry stays about as large as the data itself and an auditor can still check a
    /// known body with <c>sys/audit-hash</c>.
    /// </summary>
    private void AddData(JsonObject target, JsonObject data)
    {
        var budget = MaxHashedLeaves;
        if (WithinLeaves(data, ref budget))
        {
            target["data"] = HashStructure(data);
            return;
        }

        target["data_truncated"] = true;
        target["data_hash"] = keys.Hash(data.ToJsonString(CompactJson));
    }

    /// <summary>Whether <paramref name="node"/> has at most <paramref name="budget"/> leaf values; stops counting once over.</summary>
    private static bool WithinLeaves(JsonNode? node, ref int budget)
    {
        switch (node)
        {
            case JsonObject obj:
                foreach (var (_, value) in obj)
                {
                    if (!WithinLeaves(value, ref budget))
                    {
                        return false;
                    }
                }

                return true;
            case JsonArray arr:
                foreach (var value in arr)
                {
                    if (!WithinLeaves(value, ref budget))
                    {
                        return false;
                    }
                }

                return true;
            default:
                return --budget >= 0;
        }
    }

    /// <summary>Appends one entry; a closed log means the KMS sealed, so the request fails as sealed.</summary>
    /// <exception cref="KmsException">503: the log was closed by a seal (or an HA step-down, or a restore).</exception>
    private void Append(JsonObject entry)
    {
        try
        {
            log.Append(entry);
        }
        catch (ObjectDisposedException)
        {
            // Only the unsealed state's close disposes the log, just before it wipes the keys. A request the seal
            // stopped waiting for must then fail as sealed (503) like its key uses do, not as an internal error.
            throw KmsException.Sealed();
        }
    }

    private JsonObject RequestOf(KmsRequest request)
    {
        var r = new JsonObject
        {
            ["id"] = request.Id,
            ["operation"] = request.Operation.Name(),
            ["mount_point"] = request.MountPoint,
            ["path"] = request.Path,
            ["remote_address"] = request.RemoteAddress,
        };
        if (request.ClientToken is { } token)
        {
            r["client_token"] = keys.Hash(token);
        }

        if (request.Token is { } entry)
        {
            r["client_token_accessor"] = keys.Hash(entry.Accessor);
        }

        if (request.Data.Count > 0)
        {
            AddData(r, request.Data);
        }

        return r;
    }

    private JsonObject? AuthOf(TokenEntry? entry) => entry is null ? null : new JsonObject
    {
        ["accessor"] = keys.Hash(entry.Accessor),
        ["display_name"] = entry.DisplayName,
        ["policies"] = JsonValues.Strings(entry.Policies),
        ["metadata"] = JsonValues.StringMap(entry.Meta),
        ["token_type"] = "service",
        ["orphan"] = entry.Orphan,
    };
}
