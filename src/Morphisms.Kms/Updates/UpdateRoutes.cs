using System.Globalization;
using System.Text.Json.Nodes;
using Morphisms.Kms.Functions;
using Morphisms.Kms.Http;

namespace Morphisms.Kms.Updates;

/// <summary>
/// The update flow under <c>morphisms/functions/NAME/</c>: <c>updates</c> (LIST), <c>updates/ID</c> (GET, DELETE =
/// cancel), <c>updates/ID/approve</c> (POST) and <c>revisions/N/retire</c> (POST). These routes are not
/// root-protected, so owners need no sudo: the ACL must grant the path, and approving additionally requires the
/// caller's token to name an owner in its <c>morphisms_owner</c> metadata (which only a root token can set, see
/// <see cref="OwnerIdentity"/>). Cancelling and retiring are for an owner or a caller with sudo on the path. They
/// act on a deleted function's tombstone as on a registered function (<see cref="Tombstones"/>).
/// </summary>
internal static class UpdateRoutes
{
    /// <summary>Adds the routes to the registry's table (before its catch-all function route matters: patterns differ).</summary>
    public static void Register(RouteTable routes, FunctionRetirement retirement)
    {
        const string Function = "functions/(?<name>[^/]+)";
        routes.Add(new Route("morphisms/functions/updates", Function + "/updates/?"), (Operation.List, ListAsync));
        routes.Add(new Route("morphisms/functions/updates/approve", Function + "/updates/(?<id>[^/]+)/approve"), (Operation.Update, ApproveAsync));
        routes.Add(new Route("morphisms/functions/updates/id", Function + "/updates/(?<id>[^/]+)"), (Operation.Read, ReadAsync), (Operation.Delete, CancelAsync));
        routes.Add(
            new Route("morphisms/functions/revisions/retire", Function + "/revisions/(?<revision>[^/]+)/retire"),
            (Operation.Update, (r, m, ct) => RetireAsync(r, m, retirement, ct)));
    }

    private static async Task<KmsResponse?> ListAsync(KmsRequest request, RouteMatch match, CancellationToken ct)
    {
        var record = await LoadAsync(request, match, ct).ConfigureAwait(false);
        if (record.Updates.Count == 0)
        {
            throw KmsException.NotFound();
        }

        var info = new JsonObject();
        foreach (var update in record.Updates)
        {
            info[Id(update.Id)] = new JsonObject { ["status"] = update.Status, ["approvals"] = update.Approvals.Count, ["approvals_required"] = record.ApprovalsRequired };
        }

        return KmsResponse.WithData(new JsonObject { ["keys"] = JsonValues.Strings(record.Updates.Select(u => Id(u.Id))), ["key_info"] = info });
    }

    private static async Task<KmsResponse?> ReadAsync(KmsRequest request, RouteMatch match, CancellationToken ct)
    {
        var id = Number(match["id"], "update id");
        var record = await LoadAsync(request, match, ct).ConfigureAwait(false);
        var update = record.Updates.Find(u => u.Id == id) ?? throw KmsException.NotFound();
        return KmsResponse.WithData(UpdateJson.Of(record, update));
    }

    private static async Task<KmsResponse?> ApproveAsync(KmsRequest request, RouteMatch match, CancellationToken ct)
    {
        var name = FunctionRegistry.ValidName(match["name"]);
        var id = Number(match["id"], "update id");
        var owner = OwnerIdentity.Of(request.Token!)
            ?? throw new KmsException(403, "approving needs a token naming its owner: its metadata morphisms_owner (set by a root token) is missing");
        var state = request.RequireState();
        var (record, update, cancelled) = await state.Functions.ApproveAsync(name, id, owner, ct).ConfigureAwait(false);
        state.Audit?.Event("function-update-approved", request, Details(record, update, owner));
        if (update.Status == UpdateStatus.Applied)
        {
            state.Audit?.Event("function-update-applied", request, Details(record, update, owner));
            if (update.Kind == UpdateKind.Restore)
            {
                state.Audit?.Event("function-restored", request, Tombstones.RestoredDetails(record, update, cancelled));
            }
            else if (update.Kind == UpdateKind.Purge)
            {
                state.Audit?.Event("function-tombstone-purged", request, Details(record, update, owner));
            }
        }

        return KmsResponse.WithData(UpdateJson.Of(record, update));
    }

    private static async Task<KmsResponse?> CancelAsync(KmsRequest request, RouteMatch match, CancellationToken ct)
    {
        var name = FunctionRegistry.ValidName(match["name"]);
        var id = Number(match["id"], "update id");
        await RequireOwnerOrSudoAsync(request, name, ct).ConfigureAwait(false);
        var state = request.RequireState();
        var (record, update, _) = await state.Functions.CancelAsync(name, id, ct).ConfigureAwait(false);
        state.Audit?.Event("function-update-cancelled", request, Details(record, update, OwnerIdentity.Of(request.Token!)));
        return KmsResponse.WithData(UpdateJson.Of(record, update));
    }

    private static async Task<KmsResponse?> RetireAsync(KmsRequest request, RouteMatch match, FunctionRetirement retirement, CancellationToken ct)
    {
        var name = FunctionRegistry.ValidName(match["name"]);
        var revision = Number(match["revision"], "revision");
        await RequireOwnerOrSudoAsync(request, name, ct).ConfigureAwait(false);
        var state = request.RequireState();
        var (record, tokens, certificates) = await retirement.RetireAsync(state, name, revision, ct).ConfigureAwait(false);
        state.Audit?.Event("function-revision-retired", request, new JsonObject
        {
            ["function"] = name,
            ["revision"] = revision,
            ["by_owner"] = OwnerIdentity.Of(request.Token!),
            ["tokens_revoked"] = tokens,
            ["certificates_revoked"] = certificates,
        });
        return KmsResponse.WithData(new JsonObject
        {
            ["function"] = name,
            ["revision"] = revision,
            ["status"] = RevisionStatus.Retired,
            ["tokens_revoked"] = tokens,
            ["certificates_revoked"] = certificates,
            ["active_revisions"] = new JsonArray([.. record.ActiveRevisions.Select(r => (JsonNode)r.Revision)]),
        });
    }

    private static async Task<FunctionRecord> LoadAsync(KmsRequest request, RouteMatch match, CancellationToken ct) =>
        await request.RequireState().Functions.GetOrTombstoneAsync(FunctionRegistry.ValidName(match["name"]), ct).ConfigureAwait(false)
            ?? throw KmsException.NotFound();

    /// <summary>Lets the call through for a caller with sudo on the path or an owner of the function (or of its tombstone).</summary>
    /// <exception cref="KmsException">404 no such function or tombstone, 403 neither.</exception>
    internal static async Task RequireOwnerOrSudoAsync(KmsRequest request, string name, CancellationToken ct)
    {
        if (request.Acl!.Allows(request.Operation, request.Path, sudo: true))
        {
            return;
        }

        var record = await request.RequireState().Functions.GetOrTombstoneAsync(name, ct).ConfigureAwait(false) ?? throw KmsException.NotFound();
        if (!OwnerIdentity.Owns(request.Token!, record))
        {
            throw new KmsException(403, $"only an owner of function {name} or a caller with sudo on this path may do this");
        }
    }

    private static JsonObject Details(FunctionRecord record, PendingUpdate update, string? owner) => new()
    {
        ["function"] = record.Name,
        ["update"] = update.Id,
        ["kind"] = update.Kind,
        ["status"] = update.Status,
        ["owner"] = owner,
        ["approvals"] = JsonValues.Strings(update.Approvals.Select(a => a.Owner)),
        ["approvals_required"] = record.ApprovalsRequired,
        ["applied_revision"] = update.AppliedRevision,
        ["secret_path"] = update.SecretPath,
    };

    private static int Number(string text, string what) =>
        int.TryParse(text, NumberStyles.None, CultureInfo.InvariantCulture, out var n) && n > 0
            ? n
            : throw KmsException.BadRequest($"invalid {what}: expected a positive integer");

    private static string Id(int id) => id.ToString(CultureInfo.InvariantCulture);
}
