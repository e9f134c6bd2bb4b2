using System.Text.Json;
using System.Text.Json.Nodes;
using System.Text.Json.Serialization;
using Morphisms.Kms.Barrier;
using Morphisms.Kms.Http;

namespace Morphisms.Kms.Functions;

/// <summary>
/// The read shape of a function: the writable fields as a write takes them (the current revision's reference values
/// at the top level, so a read can be edited and written back without its read-only fields), then the revisions.
/// </summary>
internal static class FunctionJson
{
    private static readonly JsonSerializerOptions Options = new(SecureStorageJson.Options) { DefaultIgnoreCondition = JsonIgnoreCondition.WhenWritingNull };

    /// <summary>The <c>data</c> of a read.</summary>
    public static JsonObject Of(FunctionRecord record)
    {
        var data = new JsonObject
        {
            ["name"] = record.Name,
            ["owners"] = JsonValues.Strings(record.Owners),
            ["approvals_required"] = record.ApprovalsRequired,
            ["policies"] = JsonValues.Strings(record.Policies),
            ["token_ttl"] = record.TokenTtl,
            ["token_max_ttl"] = record.TokenMaxTtl,
            ["secret_path"] = record.SecretPath,
        };
        if (record.FormerSecretPaths.Count > 0)
        {
            data["former_secret_paths"] = JsonValues.Strings(record.FormerSecretPaths);
        }

        if (record.Current is { } current)
        {
            foreach (var (key, value) in ValuesOf(current.ReferenceValues))
            {
                data[key] = value?.DeepClone();
            }
        }

        data["current_revision"] = record.Current?.Revision ?? 0;
        data["revisions"] = new JsonArray([.. record.Revisions.Select(Revision)]);
        data["pending_updates"] = new JsonArray([.. record.Updates.Where(u => u.Status == Updates.UpdateStatus.Pending).Select(u => (JsonNode)u.Id)]);
        data["created_time"] = Timestamps.Rfc3339(record.CreatedTime);
        data["updated_time"] = Timestamps.Rfc3339(record.UpdatedTime);
        if (record.DeletedTime is { } deleted)
        {
            data["deleted_time"] = Timestamps.Rfc3339(deleted);
        }

        return data;
    }

    private static JsonObject Revision(FunctionRevision revision)
    {
        var json = new JsonObject
        {
            ["revision"] = revision.Revision,
            ["status"] = revision.Status,
            ["created_time"] = Timestamps.Rfc3339(revision.CreatedTime),
        };
        if (revision.RetiredTime is { } retired)
        {
            json["retired_time"] = Timestamps.Rfc3339(retired);
        }

        foreach (var (key, value) in ValuesOf(revision.ReferenceValues))
        {
            json[key] = value?.DeepClone();
        }

        return json;
    }

    /// <summary>Reference values as a write takes them.</summary>
    public static JsonObject ValuesOf(ReferenceValues values) => JsonSerializer.SerializeToNode(values, Options)!.AsObject();
}
