using System.Text.Json.Nodes;
using Morphisms.Kms.Http;

namespace Morphisms.Kms.Audit;

/// <summary><c>sys/audit</c> (list devices), <c>sys/audit-hash/NAME</c> (HMAC a value to search the log) and <c>sys/audit-verify</c> (check the chain with the key inside the KMS).</summary>
internal static class AuditRoutes
{
    public static void Register(RouteTable routes)
    {
        routes.Add(
            new Route("sys/audit", "audit/?") { Sudo = true },
            (Operation.Read, (r, _, _) =>
            {
                var data = new JsonObject();
                if (r.RequireState().Audit is { } audit)
                {
                    data["file/"] = new JsonObject
                    {
                        ["type"] = "file",
                        ["path"] = "file/",
                        ["description"] = "hash-chained append-only audit log",
                        ["local"] = false,
                        ["options"] = new JsonObject { ["file_path"] = audit.FilePath },
                    };
                }

                return Task.FromResult<KmsResponse?>(new KmsResponse { Data = data, MergeDataToTopLevel = true });
            }));
        routes.Add(
            new Route("sys/audit-hash", "audit-hash/(?<name>.+)"),
            (Operation.Update, (r, m, _) =>
            {
                var audit = Device(r, m["name"]);
                var input = r.Fields.String("input") ?? throw KmsException.BadRequest("missing required parameter 'input'");
                return Task.FromResult<KmsResponse?>(KmsResponse.WithData(new JsonObject { ["hash"] = audit.Keys.Hash(input) }));
            }));
        routes.Add(
            new Route("sys/audit-verify", "audit-verify") { Sudo = true },
            (Operation.Update, (r, _, _) =>
            {
                var audit = Device(r, "file");

                // The head is taken before the file is read: entries appended meanwhile only follow it.
                AuditVerification result;
                try
                {
                    result = AuditLogVerifier.Verify(audit.FilePath, audit.Keys.ChainKey, r.Fields.String("expected_last_hash"), audit.Head);
                }
                catch (Exception e) when (e is IOException or UnauthorizedAccessException)
                {
                    // Moved away (logrotate without copytruncate: the KMS keeps writing to the file it opened, under its
                    // new name, until it is unsealed again), removed, or not readable.
                    throw KmsException.BadRequest($"the audit log {audit.FilePath} cannot be read ({e.GetType().Name}): it was moved, removed or made unreadable under the running KMS, which keeps writing to the file it opened until it is unsealed again; rotate it with copytruncate");
                }


                return Task.FromResult<KmsResponse?>(KmsResponse.WithData(new JsonObject
                {
                    ["valid"] = result.Valid,
                    ["entries"] = result.Entries,
                    ["first_sequence"] = result.FirstSequence,
                    ["last_sequence"] = result.LastSequence,
                    ["last_hash"] = result.LastHash,
                    ["macs_checked"] = result.MacsChecked,
                    ["problems"] = JsonValues.Strings(result.Problems),
                }));
            }));
    }

    /// <summary>
    /// The audit device a request names; <c>file/</c> is <c>file</c>. The ACL judged the path as sent, so for
    /// <c>sys/audit-hash/file/</c> it must also allow <c>sys/audit-hash/file</c>: an exact deny there is not escaped
    /// by a trailing slash.
    /// </summary>
    private static AuditRecorder Device(KmsRequest request, string name)
    {
        if (name.TrimEnd('/') != "file" || request.RequireState().Audit is not { } audit)
        {
            throw KmsException.BadRequest($"no audit device named '{name}'");
        }

        if (name != "file")
        {
            request.RequireAllowedAsWell("sys/audit-hash/file");
        }

        return audit;
    }
}
