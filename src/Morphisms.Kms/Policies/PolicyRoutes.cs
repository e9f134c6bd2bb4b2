using System.Text.Json.Nodes;
using Morphisms.Kms.Http;

namespace Morphisms.Kms.Policies;

/// <summary><c>sys/policy[/NAME]</c> (the older shape) and <c>sys/policies/acl[/NAME]</c>.</summary>
internal static class PolicyRoutes
{
    public static void Register(RouteTable routes)
    {
        routes.Add(
            new Route("sys/policy", "policy/?"),
            (Operation.Read, ListLegacy),
            (Operation.List, ListLegacy));
        routes.Add(
            new Route("sys/policy/name", "policy/(?<name>.+)") { Existence = ExistsAsync },
            (Operation.Read, async (r, m, ct) =>
            {
                var policy = await GetAsync(r, m, ct).ConfigureAwait(false);
                return new KmsResponse { Data = new JsonObject { ["name"] = policy.Name, ["rules"] = policy.Raw }, MergeDataToTopLevel = true };
            }),
            (Operation.Update, (r, m, ct) => PutAsync(r, m, r.Fields.String("policy") ?? r.Fields.String("rules"), ct)),
            (Operation.Delete, DeleteAsync));
        routes.Add(
            new Route("sys/policies/acl", "policies/acl/?"),
            (Operation.List, async (r, _, ct) =>
            {
                var names = await r.RequireState().Policies.ListAsync(ct).ConfigureAwait(false);
                return KmsResponse.WithData(new JsonObject { ["keys"] = JsonValues.Strings(names), ["policies"] = JsonValues.Strings(names) });
            }));
        routes.Add(
            new Route("sys/policies/acl/name", "policies/acl/(?<name>.+)") { Existence = ExistsAsync },
            (Operation.Read, async (r, m, ct) =>
            {
                var policy = await GetAsync(r, m, ct).ConfigureAwait(false);
                return KmsResponse.WithData(new JsonObject { ["name"] = policy.Name, ["policy"] = policy.Raw });
            }),
            (Operation.Update, (r, m, ct) => PutAsync(r, m, r.Fields.String("policy"), ct)),
            (Operation.Delete, DeleteAsync));
    }

    private static async Task<KmsResponse?> ListLegacy(KmsRequest request, RouteMatch match, CancellationToken ct)
    {
        var names = await request.RequireState().Policies.ListAsync(ct).ConfigureAwait(false);
        return new KmsResponse { Data = new JsonObject { ["keys"] = JsonValues.Strings(names), ["policies"] = JsonValues.Strings(names) }, MergeDataToTopLevel = true };
    }

    /// <summary>
    /// The policy a request names, normalised as Vault does (<c>Team-A</c> is <c>team-a</c>). The ACL judged the path as
    /// sent, so when normalising changes the name the ACL must also allow the path of the policy actually touched: an
    /// exact deny on <c>sys/policies/acl/admin</c> is not escaped by writing <c>ADMIN</c> or <c> admin</c>.
    /// </summary>
    private static string Name(KmsRequest request, RouteMatch match)
    {
        var sent = match["name"];
        var name = PolicyStore.NormalizeName(sent);
        if (sent != name && request.Acl is not null)
        {
            // The route took the name from the end of the path; a path that does not end with it is refused, not guessed at.
            if (!request.Path.EndsWith(sent, StringComparison.Ordinal))
            {
                throw KmsException.PermissionDenied();
            }

            request.RequireAllowedAsWell(request.Path[..^sent.Length] + name);
        }

        return name;
    }

    private static async Task<bool> ExistsAsync(KmsRequest request, RouteMatch match, CancellationToken ct) =>
        await request.RequireState().Policies.GetAsync(PolicyStore.NormalizeName(match["name"]), ct).ConfigureAwait(false) is not null;

    private static async Task<Policy> GetAsync(KmsRequest request, RouteMatch match, CancellationToken ct) =>
        await request.RequireState().Policies.GetAsync(Name(request, match), ct).ConfigureAwait(false)
        ?? throw KmsException.NotFound();

    private static async Task<KmsResponse?> PutAsync(KmsRequest request, RouteMatch match, string? text, CancellationToken ct)
    {
        if (string.IsNullOrWhiteSpace(text))
        {
            throw KmsException.BadRequest("missing required parameter 'policy'");
        }

        await request.RequireState().Policies.PutAsync(Name(request, match), text, ct).ConfigureAwait(false);
        return null;
    }

    private static async Task<KmsResponse?> DeleteAsync(KmsRequest request, RouteMatch match, CancellationToken ct)
    {
        await request.RequireState().Policies.DeleteAsync(Name(request, match), ct).ConfigureAwait(false);
        return null;
    }
}
