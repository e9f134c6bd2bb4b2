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
    public FunctionRegistryBackend(KmsCore core, Updates.FunctionRetirement retirement)
    {
        Routes.Add(
            new Route("morphisms/functions", "functions/?") { Sudo = true },
            (Operation.List, ListAsync));
        Routes.Add(
            new Route("morphisms/functions/name", "functions/(?<name>[^/]+)") { Sudo = true, Existence = ExistsAsync },
            (Operation.Read, ReadAsync),
            (Operation.Update, (r, m, ct) => WriteAsync(r, m, core.Options.MaxTokenTtl, ct)),
            (Operation.Delete, (r, m, ct) => DeleteAsync(r, m, retirement, ct)));
        Updates.UpdateRoutes.Register(Routes, retirement);
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
        var state = request.RequireState();
        var (record, proposed) = await state.Functions.PutAsync(name, spec, maxTokenTtl, ct).ConfigureAwait(false);
        var data = FunctionJson.Of(record);
        if (proposed is null)
        {
            return KmsResponse.WithData(data);
        }

        state.Audit?.Event("function-update-proposed", request, new JsonObject
        {
            ["function"] = name,
            ["update"] = proposed.Id,
            ["reference_values"] = proposed.ReferenceValues is not null,
            ["owners"] = proposed.Owners is null ? null : JsonValues.Strings(proposed.Owners),
            ["new_approvals_required"] = proposed.ApprovalsRequired,
            ["approvals_required"] = record.ApprovalsRequired,
        });
        data["pending_update"] = Updates.UpdateJson.Of(record, proposed);
        var response = KmsResponse.WithData(data);
        response.Warnings.Add($"function {name} requires {record.ApprovalsRequired} owner approvals: the new reference values, owners or threshold are pending update {proposed.Id} "
            + $"(POST morphisms/functions/{name}/updates/{proposed.Id}/approve)");
        return response;
    }

    private static async Task<KmsResponse?> DeleteAsync(KmsRequest request, RouteMatch match, Updates.FunctionRetirement retirement, CancellationToken ct)
    {
        var name = FunctionRegistry.ValidName(match["name"]);
        var state = request.RequireState();
        if (await state.Functions.GetAsync(name, ct).ConfigureAwait(false) is { } record)
        {
            // Deleted first so no new login can succeed, then whatever was issued goes too.
            await state.Functions.DeleteAsync(name, ct).ConfigureAwait(false);
            await retirement.RevokeAllAsync(state, record, ct).ConfigureAwait(false);
        }

        return null;
    }
}
