using System.Globalization;
using Morphisms.Kms.Attest;
using Morphisms.Kms.Http;
using Morphisms.Kms.Kv;
using Morphisms.Kms.Updates;

namespace Morphisms.Kms.Functions;

/// <summary>
/// The secret bundle of a function whose owners approve its changes is that function's, whatever the ACL policies
/// say. Whoever may register functions and write ACL policies (the serving host's token does both at every deploy)
/// could otherwise register a function of its own, with its own measurement and a policy naming another function's
/// bundle path, and read or overwrite that bundle from an instance it attests: owner approval would guard what a
/// function runs but not what it is given. So, on KV requests that are not root's, the approved path of an owned
/// function (and every KV route of that key: data, metadata, delete, undelete, destroy) is reachable only by that
/// function's own attest-login tokens of a revision it has not retired, to read its data, and by its owners' tokens (<c>morphisms_owner</c>), to manage
/// it. The registry never gives an owned function a path another holds (<c>FunctionRegistry.RequireUnheldAsync</c>).
/// </summary>
internal static class OwnedBundleGuard
{
    private static readonly string[] KeySections = ["data/", "metadata/", "delete/", "undelete/", "destroy/"];

    /// <summary>Throws a 403 when the request touches an owned function's bundle that its token may not.</summary>
    public static async Task CheckAsync(KmsRequest request, ILogicalBackend backend, CancellationToken ct)
    {
        if (backend is not KvV2Backend || request.Token is not { IsRoot: false } token || BundlePathOf(request) is not { } path)
        {
            return;
        }

        var holders = await request.RequireState().Functions.OwnedBundlesAsync(ct).ConfigureAwait(false);
        if (!holders.TryGetValue(path, out var function))
        {
            return;
        }

        if (OwnerIdentity.Owns(token, function))
        {
            return;
        }

        // Of a revision the function holds and has not retired: retiring one revokes its tokens afterwards, and one
        // retired as the function was made owned (approved by no owner) must not read what the owners write next,
        // should that revocation stop short. A token of a deleted function of the same name matches no revision.
        var ownInstance = token.Path == AttestBackend.LoginPath && token.Meta.TryGetValue(AttestBackend.FunctionMetadataKey, out var name) && name == function.Name
            && token.Meta.TryGetValue(AttestBackend.RevisionMetadataKey, out var text) && int.TryParse(text, NumberStyles.None, CultureInfo.InvariantCulture, out var revision)
            && function.Revisions.Exists(r => r.Revision == revision && r.Status != RevisionStatus.Retired);
        if (ownInstance && request.Operation == Operation.Read && request.RelativePath.StartsWith("data/", StringComparison.Ordinal))
        {
            return;
        }

        throw new KmsException(403, $"permission denied: {path} is the secret bundle of function '{function.Name}', whose owners approve its changes: only its attested instances read it and only its owners change it");
    }

    /// <summary>The request's key as a KV v2 data path (<c>MOUNT/data/KEY</c>), or null for routes without a key.</summary>
    private static string? BundlePathOf(KmsRequest request)
    {
        foreach (var section in KeySections)
        {
            if (request.RelativePath.StartsWith(section, StringComparison.Ordinal) && request.RelativePath.Length > section.Length)
            {
                return request.MountPoint + "data/" + request.RelativePath[section.Length..];
            }
        }

        return null;
    }
}
