using System.Text.Json.Nodes;
using Morphisms.Kms.Functions;
using Morphisms.Kms.Http;

namespace Morphisms.Kms.Updates;

/// <summary>The read shape of a pending update.</summary>
internal static class UpdateJson
{
    /// <summary>The <c>data</c> of <c>morphisms/functions/NAME/updates/ID</c>.</summary>
    public static JsonObject Of(FunctionRecord record, PendingUpdate update)
    {
        var json = new JsonObject
        {
            ["id"] = update.Id,
            ["function"] = record.Name,
            ["function_deleted"] = record.IsTombstone,
            ["kind"] = update.Kind,
            ["status"] = update.Status,
            ["created_time"] = Timestamps.Rfc3339(update.CreatedTime),
            ["resolved_time"] = update.ResolvedTime is { } t ? Timestamps.Rfc3339(t) : null,
            ["approvals"] = new JsonArray([.. update.Approvals.Select(a => new JsonObject { ["owner"] = a.Owner, ["time"] = Timestamps.Rfc3339(a.Time) })]),
            ["approvals_required"] = record.ApprovalsRequired,
            ["approvals_remaining"] = update.Status == UpdateStatus.Pending ? Math.Max(0, record.ApprovalsRequired - update.ApprovalsBy(record.Owners)) : 0,
            ["owners"] = update.Owners is null ? null : JsonValues.Strings(update.Owners),
            ["new_approvals_required"] = update.ApprovalsRequired,
            ["secret_path"] = update.SecretPath,
            ["reference_values"] = update.ReferenceValues is null ? null : FunctionJson.ValuesOf(update.ReferenceValues),
            ["applied_revision"] = update.AppliedRevision,
        };
        return json;
    }
}
