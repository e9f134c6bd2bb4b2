using System.Text.Json.Nodes;
using Morphisms.Kms.Http;

namespace Morphisms.Kms.Sys;

/// <summary><c>sys/mounts</c>, <c>sys/mounts/PATH</c>, <c>sys/auth</c> and <c>sys/internal/ui/mounts/PATH</c> (used by Vault's CLI to find a KV version).</summary>
internal static class MountRoutes
{
    public static void Register(RouteTable routes)
    {
        routes.Add(
            new Route("sys/mounts", "mounts/?"),
            (Operation.Read, (r, _, _) =>
            {
                var data = new JsonObject
                {
                    ["sys/"] = new JsonObject
                    {
                        ["type"] = "system",
                        ["description"] = "system endpoints used for control, policy and debugging",
                        ["accessor"] = "system",
                        ["options"] = null,
                        ["local"] = false,
                        ["seal_wrap"] = false,
                    },
                };
                foreach (var entry in r.RequireState().Mounts.Entries)
                {
                    data[entry.Path] = entry.ToJson();
                }

                return Task.FromResult<KmsResponse?>(new KmsResponse { Data = data, MergeDataToTopLevel = true });
            }));
        routes.Add(
            new Route("sys/mounts/path", "mounts/(?<path>.+)"),
            (Operation.Read, (r, m, _) =>
            {
                var entry = r.RequireState().Mounts.Get(MountPath(r, m)) ?? throw KmsException.BadRequest("no mount at this path");
                return Task.FromResult<KmsResponse?>(KmsResponse.WithData(entry.ToJson()));
            }),
            (Operation.Update, async (r, m, ct) =>
            {
                var f = r.Fields;
                var type = f.RequiredString("type");
                var options = f.StringMap("options") ?? [];
                _ = f.Object("config");
                await r.RequireState().Mounts.MountAsync(MountPath(r, m), type, f.String("description") ?? "", options, ct).ConfigureAwait(false);
                return null;
            }),
            (Operation.Delete, async (r, m, ct) =>
            {
                await r.RequireState().Mounts.UnmountAsync(MountPath(r, m), ct).ConfigureAwait(false);
                return null;
            }));
        routes.Add(
            new Route("sys/auth", "auth/?"),
            (Operation.Read, (_, _, _) =>
            {
                var data = new JsonObject
                {
                    ["token/"] = new JsonObject
                    {
                        ["type"] = "token",
                        ["description"] = "token based credentials",
                        ["accessor"] = "auth_token",
                        ["local"] = false,
                        ["seal_wrap"] = false,
                        ["options"] = null,
                    },
                    ["attest/"] = new JsonObject
                    {
                        ["type"] = "attest",
                        ["description"] = "TEE attestation login for registered functions",
                        ["accessor"] = "auth_attest",
                        ["local"] = false,
                        ["seal_wrap"] = false,
                        ["options"] = null,
                    },
                };
                return Task.FromResult<KmsResponse?>(new KmsResponse { Data = data, MergeDataToTopLevel = true });
            }));
        routes.Add(
            new Route("sys/internal/ui/mounts/path", "internal/ui/mounts/(?<path>.+)") { HandlerAuthorizes = true },
            (Operation.Read, (r, m, _) =>
            {
                // Any token may ask, but the answer (type, accessor, uuid) is only for tokens with some capability under
                // the mount, as in Vault. A missing mount gets the same 403, so the route does not reveal which exist
                // (root, which may read sys/mounts anyway, is told there is none).
                var acl = r.Acl ?? throw KmsException.PermissionDenied();
                if (r.RequireState().Mounts.Resolve(m["path"]) is not { } resolved)
                {
                    throw acl.IsRoot ? KmsException.BadRequest("no mount serves this path") : Denied();
                }

                if (!acl.HasMountAccess(resolved.Entry.Path))
                {
                    throw Denied();
                }

                var data = resolved.Entry.ToJson();
                data["path"] = resolved.Entry.Path;
                return Task.FromResult<KmsResponse?>(KmsResponse.WithData(data));
            }));
    }

    /// <summary>
    /// The mount a <c>sys/mounts/PATH</c> request names, normalised (<c>/secret/</c> and <c>secret</c> are <c>secret/</c>).
    /// The ACL judged the path as sent, so when that is not the canonical <c>sys/mounts/secret</c> the ACL must also
    /// allow the operation there: an exact rule on <c>sys/mounts/secret</c> (a deny, or fewer capabilities than a
    /// <c>sys/mounts/*</c> beside it) is not escaped by <c>sys/mounts/secret/</c> or <c>sys/mounts//secret</c>. A trailing
    /// slash, as Vault's CLI sends, is still accepted where the canonical path is allowed.
    /// </summary>
    private static string MountPath(KmsRequest request, RouteMatch match)
    {
        var path = MountTable.NormalizePath(match["path"]);
        request.RequireAllowedAsWell("sys/mounts/" + path[..^1]);
        return path;
    }

    private static KmsException Denied() =>
        new(403, "permission denied: the token has no capability on any path under the mount that serves this path");
}
