using System.Text.Json.Nodes;
using Morphisms.Kms.Http;

namespace Morphisms.Kms.Functions;

/// <summary>
/// The function registry at <c>morphisms/functions/</c>: LIST, and GET/PUT/DELETE of <c>morphisms/functions/NAME</c>.
/// Every route is root-protected (the ACL must grant <c>sudo</c>), because whoever writes reference values decides
/// which code receives the function's secrets. LIST and GET show registered functions only; a deleted function's
/// tombstone is read at <c>NAME/tombstone</c> (see <see cref="Updates.Tombstones"/>), but for the ACL's create/update
/// distinction a tombstoned name exists. DELETE revokes everything issued under the name up to the last revision the
/// deleted function reached, also when nothing is registered any more, so a DELETE again finishes a deletion whose
/// revocation was interrupted without reaching a function registered afresh under the name since (its revisions are
/// numbered after that one).
/// </summary>
internal sealed class FunctionRegistryBackend : ILogicalBackend
{
    // Once a deletion is committed, revoking what the function was issued no longer stops when the caller goes away
    // (the function would be gone with its tokens and certificates still valid). This bound only keeps a stuck store
    // from holding the request for ever; a DELETE again finishes whatever is left.
    private static readonly TimeSpan RevocationTimeout = TimeSpan.FromMinutes(5);

    public FunctionRegistryBackend(KmsCore core, Updates.FunctionRetirement retirement)
    {
        Routes.Add(
            new Route("morphisms/functions", "functions/?") { Sudo = true },
            (Operation.List, ListAsync));
        Routes.Add(
            new Route("morphisms/functions/name", "functions/(?<name>[^/]+)") { Sudo = true, Existence = ExistsAsync },
            (Operation.Read, ReadAsync),
            (Operation.Update, (r, m, ct) => WriteAsync(r, m, retirement, core.Options.MaxTokenTtl, ct)),
            (Operation.Delete, (r, m, ct) => DeleteAsync(r, m, retirement, core.Options.TimeProvider, ct)));
        Updates.UpdateRoutes.Register(Routes, retirement);
        Updates.Tombstones.Register(Routes);
    }

    /// <inheritdoc />
    public string Type => "morphisms";

    /// <inheritdoc />
    public RouteTable Routes { get; } = new();

    // A tombstone counts: writing to its name updates (or restores) the deleted function, so the ACL must grant
    // update there, not merely create.
    private static async Task<bool> ExistsAsync(KmsRequest request, RouteMatch match, CancellationToken ct) =>
        await request.RequireState().Functions.GetOrTombstoneAsync(FunctionRegistry.ValidName(match["name"]), ct).ConfigureAwait(false) is not null;

    private static async Task<KmsResponse?> ListAsync(KmsRequest request, RouteMatch match, CancellationToken ct)
    {
        var names = await request.RequireState().Functions.ListAsync(ct).ConfigureAwait(false);

        // Vault answers an empty listing with 404, and its clients read that as "nothing here".
        return names.Count == 0 ? throw KmsException.NotFound() : KmsResponse.WithData(new JsonObject { ["keys"] = JsonValues.Strings(names) });
    }

    private static async Task<KmsResponse?> ReadAsync(KmsRequest request, RouteMatch match, CancellationToken ct)
    {
        var name = FunctionRegistry.ValidName(match["name"]);
        var functions = request.RequireState().Functions;
        if (await functions.GetAsync(name, ct).ConfigureAwait(false) is { } record)
        {
            return KmsResponse.WithData(FunctionJson.Of(record));
        }

        // Still a 404 (it is not a function anyone can log in as), but one that says why the name is not free.
        throw await functions.GetTombstoneAsync(name, ct).ConfigureAwait(false) is { } tombstone
            ? new KmsException(404, $"function {name} was deleted; its name is kept for its {tombstone.Owners.Count} owners (GET morphisms/functions/{name}/tombstone)")
            : KmsException.NotFound();
    }

    private static async Task<KmsResponse?> WriteAsync(KmsRequest request, RouteMatch match, Updates.FunctionRetirement retirement, TimeSpan maxTokenTtl, CancellationToken ct)
    {
        var name = FunctionRegistry.ValidName(match["name"]);
        var spec = FunctionSpec.Parse(request.Fields);
        var state = request.RequireState();
        var (record, proposed, restored, cancelled, repeated, retired) = await state.Functions.PutAsync(name, spec, maxTokenTtl, ct).ConfigureAwait(false);

        // The write made the function owned and retired the revisions its owners never approved: what they were issued
        // goes, as for a retirement by the owners. Should this stop short, the bundle guard still refuses those tokens
        // (their revision is retired), and retiring each again (revisions/N/retire) finishes it.
        foreach (var revision in retired ?? [])
        {
            var (_, tokens, certificates) = await retirement.RetireAsync(state, name, revision, ct).ConfigureAwait(false);
            state.Audit?.Event("function-revision-retired", request, new JsonObject
            {
                ["function"] = name,
                ["revision"] = revision,
                ["by_owner"] = null,
                ["reason"] = "the function was made owned: its owners never approved this revision",
                ["tokens_revoked"] = tokens,
                ["certificates_revoked"] = certificates,
            });
        }
        var data = FunctionJson.Of(record);
        if (!repeated)
        {
            AuditOptIn(request, state, name, record, proposed, spec.ReferenceValues is not null || restored);
        }

        if (restored)
        {
            state.Audit?.Event("function-restored", request, Updates.Tombstones.RestoredDetails(record, null, cancelled));
            var restoredResponse = KmsResponse.WithData(data);
            restoredResponse.Warnings.Add($"function {name} was deleted and is registered again with the reference values, owners, threshold and secret path its owners approved");
            return restoredResponse;
        }

        // SNP has no TCB default (its SPL values differ by CPU generation), unlike SGX/TDX's UpToDate: say so when the
        // written values leave it unchecked (opted out, or re-sent as stored before a floor was required).
        var snpWarning = SnpTcbFloor.Unchecked(spec.ReferenceValues) ? SnpTcbFloor.Warning(name) : null;
        if (proposed is null)
        {
            var written = KmsResponse.WithData(data);
            if (snpWarning is not null)
            {
                written.Warnings.Add(snpWarning);
            }

            return written;
        }

        if (!repeated)
        {
            state.Audit?.Event("function-update-proposed", request, new JsonObject
            {
                ["function"] = name,
                ["update"] = proposed.Id,
                ["kind"] = proposed.Kind,
                ["reference_values"] = proposed.ReferenceValues is not null,
                ["owners"] = proposed.Owners is null ? null : JsonValues.Strings(proposed.Owners),
                ["new_approvals_required"] = proposed.ApprovalsRequired,
                ["secret_path"] = proposed.SecretPath,
                ["approvals_required"] = record.ApprovalsRequired,
            });
        }

        data["pending_update"] = Updates.UpdateJson.Of(record, proposed);
        var response = KmsResponse.WithData(data);
        response.Warnings.Add(record.IsTombstone
            ? $"function {name} was deleted and requires {record.ApprovalsRequired} owner approvals: registering it again with other reference values, owners, threshold or secret path "
                + $"is pending update {proposed.Id}, and no instance can log in as {name} until it is approved (POST morphisms/functions/{name}/updates/{proposed.Id}/approve)"
            : $"function {name} requires {record.ApprovalsRequired} owner approvals: pending update {proposed.Id} holds the new {Changes(proposed)}, not applied yet "
                + $"(POST morphisms/functions/{name}/updates/{proposed.Id}/approve)");
        if (snpWarning is not null)
        {
            response.Warnings.Add(snpWarning);
        }

        return response;
    }

    /// <summary>What a pending update changes, for its warning (the host's deploy output shows it).</summary>
    private static string Changes(Updates.PendingUpdate update) => string.Join(", ", new[]
    {
        update.ReferenceValues is null ? null : "reference values",
        update.Owners is null ? null : "owners",
        update.ApprovalsRequired is null ? null : "approval threshold",
        update.SecretPath is null ? null : "secret path",
    }.OfType<string>());

    /// <summary>
    /// Records, in plain text, that the reference values this write registered or proposed rely on the registrant's
    /// word that the launch measurement binds the function (<see cref="WorkloadBinding"/>), or accept SEV-SNP evidence
    /// from any TCB by the registrant's choice (<see cref="SnpTcbFloor"/>): the request's own audit entry shows only
    /// HMACs of its values.
    /// </summary>
    private static void AuditOptIn(KmsRequest request, UnsealedState state, string name, FunctionRecord record, Updates.PendingUpdate? proposed, bool registered)
    {
        var values = proposed is not null ? proposed.ReferenceValues : registered ? record.Current?.ReferenceValues : null;
        if (WorkloadBinding.ReliedOn(values) is { Count: > 0 } tees)
        {
            state.Audit?.Event("function-launch-measurement-binds-workload", request, new JsonObject
            {
                ["function"] = name,
                ["tees"] = JsonValues.Strings(tees),
                ["revision"] = proposed is null ? record.Current?.Revision : null,
                ["update"] = proposed?.Id,
            });
        }

        if (SnpTcbFloor.OptedOut(values))
        {
            state.Audit?.Event("function-snp-allow-any-tcb", request, new JsonObject
            {
                ["function"] = name,
                ["revision"] = proposed is null ? record.Current?.Revision : null,
                ["update"] = proposed?.Id,
            });
        }
    }

    private static async Task<KmsResponse?> DeleteAsync(KmsRequest request, RouteMatch match, Updates.FunctionRetirement retirement, TimeProvider time, CancellationToken ct)
    {
        var name = FunctionRegistry.ValidName(match["name"]);
        var state = request.RequireState();

        // Deleted (or tombstoned) first so no new login can succeed, then whatever was issued goes too — up to the last
        // revision the deleted function reached: the name may be registered afresh meanwhile, numbering after it.
        var deletion = await state.Functions.DeleteAsync(name, ct).ConfigureAwait(false);
        if (deletion.Record is null)
        {
            // Nothing registered, but a deletion before may have committed and stopped before its revocation finished
            // (the node stopped or lost its lock): DELETE is idempotent as in Vault, so this one finishes the job.
            var left = deletion.Tombstone;
            var (tokens, certificates) = await RevokeAllAsync(state, retirement, name, left, deletion.LastRevision, time).ConfigureAwait(false);
            if (tokens + certificates > 0)
            {
                state.Audit?.Event("function-revocation-completed", request, new JsonObject
                {
                    ["function"] = name,
                    ["tombstone"] = left is not null,
                    ["last_revision"] = deletion.LastRevision,
                    ["tokens_revoked"] = tokens,
                    ["certificates_revoked"] = certificates,
                });
            }

            return null;
        }

        // The tombstone is committed: audited before the revocation, which may fail (a 503 past its bound, a seal, a
        // storage error) and be finished by a DELETE again — which finds no record to tombstone, so the event and the
        // updates the deletion cancelled would be recorded nowhere.
        if (deletion.Tombstone is { } committed)
        {
            state.Audit?.Event("function-tombstoned", request, new JsonObject
            {
                ["function"] = name,
                ["owners"] = JsonValues.Strings(committed.Owners),
                ["approvals_required"] = committed.ApprovalsRequired,
                ["current_revision"] = committed.Current?.Revision ?? 0,
                ["cancelled_updates"] = new JsonArray([.. deletion.CancelledUpdates.Select(id => (JsonNode)id)]),
            });
        }

        await RevokeAllAsync(state, retirement, name, deletion.Record, deletion.LastRevision, time).ConfigureAwait(false);
        if (deletion.Tombstone is not { } tombstone)
        {
            return null;
        }

        var response = KmsResponse.WithData(new JsonObject
        {
            ["name"] = name,
            ["tombstone"] = true,
            ["owners"] = JsonValues.Strings(tombstone.Owners),
            ["approvals_required"] = tombstone.ApprovalsRequired,
            ["cancelled_updates"] = new JsonArray([.. deletion.CancelledUpdates.Select(id => (JsonNode)id)]),
        });
        response.Warnings.Add($"function {name} is deleted, but its name stays with its owners: registering it again with other reference values, owners, threshold or secret path "
            + $"needs {tombstone.ApprovalsRequired} of them to approve (DELETE morphisms/functions/{name}/tombstone proposes releasing the name)");
        return response;
    }

    /// <summary>
    /// Revokes what <paramref name="name"/> was issued with a token of its own, not the request's: see
    /// <see cref="RevocationTimeout"/>.
    /// </summary>
    /// <exception cref="KmsException">503 when the revocation did not finish in time.</exception>
    private static async Task<(int Tokens, int Certificates)> RevokeAllAsync(UnsealedState state, Updates.FunctionRetirement retirement, string name, FunctionRecord? record, int lastRevision, TimeProvider time)
    {
        using var bounded = new CancellationTokenSource(RevocationTimeout, time);
        try
        {
            return await retirement.RevokeAllAsync(state, name, record, lastRevision, bounded.Token).ConfigureAwait(false);
        }
        catch (OperationCanceledException) when (bounded.IsCancellationRequested)
        {
            throw new KmsException(503, $"function {name} is deleted, but revoking its tokens and certificates did not finish within "
                + $"{Durations.ToGoString(RevocationTimeout)}: DELETE morphisms/functions/{name} again to finish it");
        }
    }
}
