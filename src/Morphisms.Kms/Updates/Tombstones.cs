using System.Text.Json.Nodes;
using Morphisms.Kms.Functions;
using Morphisms.Kms.Http;

namespace Morphisms.Kms.Updates;

/// <summary>
/// A deleted function's tombstone at <c>morphisms/functions/NAME/tombstone</c>: GET reads it (owners, threshold, the
/// revisions with the last approved reference values, pending updates), DELETE proposes releasing the name for good
/// (a <see cref="UpdateKind.Purge"/> update that M of the tombstone's owners approve through the update routes). Like
/// those routes they are not root-protected: the ACL must grant the path, and proposing a purge needs an owner or
/// sudo on the path.
/// </summary>
internal static class Tombstones
{
    /// <summary>Adds the routes to the registry's table.</summary>
    public static void Register(RouteTable routes) =>
        routes.Add(
            new Route("morphisms/functions/tombstone", "functions/(?<name>[^/]+)/tombstone"),
            (Operation.Read, ReadAsync),
            (Operation.Delete, ProposePurgeAsync));

    /// <summary>The audit details of a tombstoned function registered again (by an identical write, or by an approved update).</summary>
    public static JsonObject RestoredDetails(FunctionRecord record, PendingUpdate? update, IEnumerable<int> cancelled) => new()
    {
        ["function"] = record.Name,
        ["update"] = update?.Id,
        ["current_revision"] = record.Current?.Revision ?? 0,
        ["owners"] = JsonValues.Strings(record.Owners),
        ["approvals_required"] = record.ApprovalsRequired,
        ["cancelled_updates"] = new JsonArray([.. cancelled.Select(id => (JsonNode)id)]),
    };

    private static async Task<KmsResponse?> ReadAsync(KmsRequest request, RouteMatch match, CancellationToken ct)
    {
        var name = FunctionRegistry.ValidName(match["name"]);
        var tombstone = await request.RequireState().Functions.GetTombstoneAsync(name, ct).ConfigureAwait(false)
            ?? throw new KmsException(404, $"function {name} has no tombstone");
        return KmsResponse.WithData(FunctionJson.Of(tombstone));
    }

    private static async Task<KmsResponse?> ProposePurgeAsync(KmsRequest request, RouteMatch match, CancellationToken ct)
    {
        var name = FunctionRegistry.ValidName(match["name"]);
        await UpdateRoutes.RequireOwnerOrSudoAsync(request, name, ct).ConfigureAwait(false);
        var state = request.RequireState();
        var (tombstone, update, proposed) = await state.Functions.ProposePurgeAsync(name, ct).ConfigureAwait(false);
        if (proposed)
        {
            state.Audit?.Event("function-update-proposed", request, new JsonObject
            {
                ["function"] = name,
                ["update"] = update.Id,
                ["kind"] = update.Kind,
                ["by_owner"] = OwnerIdentity.Of(request.Token!),
                ["approvals_required"] = tombstone.ApprovalsRequired,
            });
        }

        var response = KmsResponse.WithData(UpdateJson.Of(tombstone, update));
        response.Warnings.Add($"releasing the name {name} is pending update {update.Id}: once {tombstone.ApprovalsRequired} owners approve it "
            + $"(POST morphisms/functions/{name}/updates/{update.Id}/approve), anyone allowed to register functions may register {name} afresh");
        return response;
    }
}
