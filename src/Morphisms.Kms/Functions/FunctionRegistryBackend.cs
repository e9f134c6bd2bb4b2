using System.Text.Json.Nodes;
using Morphisms.Kms.Http;

namespace Morphisms.Kms.Functions;

/// <summary>
/// The function registry at <c>morphisms/functions/</c>: LIST, and GET/PUT/DELETE of <c>morphisms/functions/NAME</c>.
/// Every route is root-protected (the ACL must grant <c>sudo</c>), because whoever writes reference values decides
/// which code receives the function's secrets.
/// </summary>
internal sealed class FunctionRegistryBackend : ILogicalBackend
{
    public FunctionRegistryBackend(KmsCore core)
    {
        Routes.Add(
            new Route("morphisms/functions", "functions/?") { Sudo = true },
            (Operation.List, ListAsync));
        Routes.Add(
            new Route("morphisms/functions/name", "functions/(?<name>[^/]+)") { Sudo = true, Existence = ExistsAsync },
            (Operation.Read, ReadAsync),
            (Operation.Update, (r, m, ct) => WriteAsync(r, m, core.Options.MaxTokenTtl, ct)),
            (Operation.Delete, DeleteAsync));
    }

    /// <inheritdoc />
    public string Type => "morphisms";

    /// <inheritdoc />
    public RouteTable Routes { get; } = new();

    private static async Task<bool> ExistsAsync(KmsRequest request, RouteMatch match, CancellationToken ct) =>
        await request.RequireState().Functions.GetAsync(FunctionRegistry.ValidName(match["name"]), ct).ConfigureAwait(false) is not null;

    private static async Task<KmsResponse?> ListAsync(KmsRequest request, RouteMatch match, CancellationToken ct)
    {
        var names = await request.RequireState().Functions.ListAsync(ct).ConfigureAwait(false);

        // Vault answers an empty listing with 404, and its clients read that as "nothing here".
        return names.Count == 0 ? throw KmsException.NotFound() : KmsResponse.WithData(new JsonObject { ["keys"] = JsonValues.Strings(names) });
    }

    private static async Task<KmsResponse?> ReadAsync(KmsRequest request, RouteMatch match, CancellationToken ct)
    {
        var record = await request.RequireState().Functions.GetAsync(FunctionRegistry.ValidName(match["name"]), ct).ConfigureAwait(false)
            ?? throw KmsException.NotFound();
        return KmsResponse.WithData(FunctionJson.Of(record));
    }

    private static async Task<KmsResponse?> WriteAsync(KmsRequest request, RouteMatch match, TimeSpan maxTokenTtl, CancellationToken ct)
    {
        var name = FunctionRegistry.ValidName(match["name"]);
        var spec = FunctionSpec.Parse(request.Fields);
        var record = await request.RequireState().Functions.PutAsync(name, spec, maxTokenTtl, ct).ConfigureAwait(false);
        return KmsResponse.WithData(FunctionJson.Of(record));
    }

    private static async Task<KmsResponse?> DeleteAsync(KmsRequest request, RouteMatch match, CancellationToken ct)
    {
        await request.RequireState().Functions.DeleteAsync(FunctionRegistry.ValidName(match["name"]), ct).ConfigureAwait(false);
        return null;
    }
}
