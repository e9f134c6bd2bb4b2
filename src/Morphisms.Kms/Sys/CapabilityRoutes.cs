using System.Text.Json.Nodes;
using Morphisms.Kms.Http;
using Morphisms.Kms.Policies;

namespace Morphisms.Kms.Sys;

/// <summary><c>sys/capabilities-self</c> and <c>sys/capabilities</c>: what a token may do on given paths.</summary>
internal static class CapabilityRoutes
{
    public static void Register(RouteTable routes)
    {
        routes.Add(
            new Route("sys/capabilities-self", "capabilities-self"),
            (Operation.Update, (r, _, _) => Task.FromResult<KmsResponse?>(Answer(r.Acl!, Paths(r)))));
        routes.Add(
            new Route("sys/capabilities", "capabilities"),
            (Operation.Update, async (r, _, ct) =>
            {
                var state = r.RequireState();
                var token = await state.Tokens.LookupAsync(r.Fields.RequiredString("token"), ct).ConfigureAwait(false)
                    ?? throw new KmsException(403, "bad token");
                return Answer(await state.Policies.AclAsync(token.Policies, ct).ConfigureAwait(false), Paths(r));
            }));
    }

    private static List<string> Paths(KmsRequest request)
    {
        var paths = request.Fields.StringList("paths") ?? (request.Fields.String("path") is { } p ? [p] : null);
        return paths is { Count: > 0 } ? [.. paths.Select(p => p.TrimStart('/'))] : throw KmsException.BadRequest("missing required parameter 'paths'");
    }

    private static KmsResponse Answer(Acl acl, List<string> paths)
    {
        var data = new JsonObject();
        var all = new HashSet<string>(StringComparer.Ordinal);
        foreach (var path in paths)
        {
            var names = Capabilities.ToNames(acl.IsRoot ? Capability.None : acl.CapabilitiesOn(path));
            if (acl.IsRoot)
            {
                names = ["root"];
            }

            data[path] = JsonValues.Strings(names);
            all.UnionWith(names);
        }

        data["capabilities"] = JsonValues.Strings(all.Order(StringComparer.Ordinal));
        return KmsResponse.WithData(data);
    }
}
