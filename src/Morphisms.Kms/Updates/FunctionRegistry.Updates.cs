using Morphisms.Kms.Barrier;
using Morphisms.Kms.Http;
using Morphisms.Kms.Updates;

namespace Morphisms.Kms.Functions;

/// <summary>
/// The update flow's registry operations: propose, approve, cancel, retire. Each is one write under the lock, and
/// each works on a deleted function's tombstone as on a registered function.
/// </summary>
internal sealed partial class FunctionRegistry
{
    /// <summary>Pending updates one function may have at once; more is a 400 (cancel or approve some first).</summary>
    public const int MaxPendingUpdates = 16;

    private const int MaxResolvedUpdatesKept = 32;

    /// <summary>
    /// Records an owner's approval; applies the update once enough of the current owners approved it (see
    /// <see cref="PendingUpdate.ApprovalsBy"/>). Also answers the other pending updates the application cancelled (a
    /// restore cancels those proposed for the deleted function).
    /// </summary>
    /// <exception cref="KmsException">404 unknown function or update, 403 not an owner, 400 not pending or already approved by this owner.</exception>
    public Task<(FunctionRecord Record, PendingUpdate Update, IReadOnlyList<int> Cancelled)> ApproveAsync(string name, int id, string owner, CancellationToken ct) =>
        ChangeUpdateAsync(name, id, (record, update, now) =>
        {
            if (!record.Owners.Contains(owner, StringComparer.Ordinal))
            {
                throw new KmsException(403, $"'{owner}' is not an owner of function {name}");
            }

            if (update.Approvals.Any(a => a.Owner == owner))
            {
                throw KmsException.BadRequest($"owner '{owner}' already approved update {id}: each owner counts once");
            }

            var approved = update with { Approvals = [.. update.Approvals, new UpdateApproval(owner, now)] };
            return approved.ApprovalsBy(record.Owners) >= record.ApprovalsRequired ? Apply(record, approved, now) : (record, approved);
        }, ct);

    /// <summary>Withdraws a pending update.</summary>
    public Task<(FunctionRecord Record, PendingUpdate Update, IReadOnlyList<int> Cancelled)> CancelAsync(string name, int id, CancellationToken ct) =>
        ChangeUpdateAsync(name, id, (record, update, now) => (record, update with { Status = UpdateStatus.Cancelled, ResolvedTime = now }), ct);

    /// <summary>
    /// Marks a revision retired (idempotent, so a sweep interrupted by a crash can be re-run). On a tombstone it
    /// keeps those values from being registered again without the owners.
    /// </summary>
    /// <exception cref="KmsException">404 unknown function or revision.</exception>
    public async Task<FunctionRecord> RetireAsync(string name, int revision, CancellationToken ct)
    {
        await _writes.WaitAsync(ct).ConfigureAwait(false);
        try
        {
            var record = await GetOrTombstoneAsync(name, ct).ConfigureAwait(false) ?? throw KmsException.NotFound();
            var index = record.Revisions.FindIndex(r => r.Revision == revision);
            if (index < 0)
            {
                throw new KmsException(404, $"function {name} has no revision {revision}");
            }

            if (record.Revisions[index].Status == RevisionStatus.Retired)
            {
                return record;
            }

            var now = time.GetUtcNow();
            var revisions = record.Revisions.ToList();
            revisions[index] = revisions[index] with { Status = RevisionStatus.Retired, RetiredTime = now };
            var updated = record with { Revisions = revisions, UpdatedTime = now };
            await SaveAsync(updated, record.IsTombstone, ct).ConfigureAwait(false);
            return updated;
        }
        finally
        {
            RegistryChanged();
            _writes.Release();
        }
    }

    /// <summary>
    /// The gated part of a write to a function that requires approval, as a pending update; null when it changes none of
    /// it. A write repeating a proposal still pending gets that update back, not a second one: the host re-sends the
    /// same spec at every deploy.
    /// </summary>
    private static PendingUpdate? Propose(FunctionRecord existing, FunctionSpec spec, DateTimeOffset now)
    {
        var current = existing.Current is { Status: not RevisionStatus.Retired } c ? c : null;
        var values = spec.ReferenceValues is { } v && (current is null || !SameValues(current.ReferenceValues, v)) ? v : null;
        var owners = spec.Owners is { } o && !o.Order(StringComparer.Ordinal).SequenceEqual(existing.Owners.Order(StringComparer.Ordinal)) ? o : null;
        int? approvals = spec.ApprovalsRequired is { } m && m != existing.ApprovalsRequired ? m : null;

        // The host re-sends the path at every deploy: only a different one is a change (the spec's path is normalised),
        // judged against the path in force, which a function registered without one has too.
        var secretPath = spec.SecretPath is { } p && !string.Equals(p, existing.EffectiveSecretPath, StringComparison.Ordinal) ? p : null;
        if (values is null && owners is null && approvals is null && secretPath is null)
        {
            return null;
        }

        var resultingOwners = (owners ?? existing.Owners).Count;
        if ((approvals ?? existing.ApprovalsRequired) > resultingOwners)
        {
            throw StrictObject.Invalid(approvals is not null ? "approvals_required" : "owners", $"approvals_required not above the number of owners ({resultingOwners})");
        }

        var proposal = new PendingUpdate
        {
            Id = existing.NextUpdateId,
            Kind = existing.IsTombstone ? UpdateKind.Restore : UpdateKind.Change,
            Status = UpdateStatus.Pending,
            CreatedTime = now,
            ReferenceValues = values,
            Owners = owners,
            ApprovalsRequired = approvals,
            SecretPath = secretPath,
        };
        if (existing.Updates.Find(u => u.Status == UpdateStatus.Pending && SameProposal(u, proposal)) is { } pending)
        {
            return pending;
        }

        if (existing.Updates.Count(u => u.Status == UpdateStatus.Pending) >= MaxPendingUpdates)
        {
            throw KmsException.BadRequest($"function {existing.Name} already has {MaxPendingUpdates} pending updates: approve or cancel some first");
        }

        return proposal;
    }

    private static bool SameProposal(PendingUpdate a, PendingUpdate b) =>
        a.Kind == b.Kind
        && (a.ReferenceValues is null ? b.ReferenceValues is null : b.ReferenceValues is not null && SameValues(a.ReferenceValues, b.ReferenceValues))
        && (a.Owners is null ? b.Owners is null : b.Owners is not null && a.Owners.Order(StringComparer.Ordinal).SequenceEqual(b.Owners.Order(StringComparer.Ordinal)))
        && a.ApprovalsRequired == b.ApprovalsRequired
        && string.Equals(a.SecretPath, b.SecretPath, StringComparison.Ordinal);

    /// <summary>
    /// Puts an approved update into effect: a new active revision, new owners, threshold or secret path (the path it
    /// leaves stays the function's, see <see cref="FunctionRecord.FormerSecretPaths"/>); a restore
    /// also brings the tombstone back as the function (its other pending updates were proposed for the deleted one and
    /// are cancelled), and a purge marks the tombstone for removal.
    /// </summary>
    /// <exception cref="KmsException">
    /// 400 when the owners and threshold it would leave require more approvals than there are owners (nothing is
    /// written; the update stays pending).
    /// </exception>
    private static (FunctionRecord, PendingUpdate) Apply(FunctionRecord record, PendingUpdate update, DateTimeOffset now)
    {
        if (update.Kind == UpdateKind.Purge)
        {
            return record.IsTombstone
                ? (record, update with { Status = UpdateStatus.Applied, ResolvedTime = now })
                : throw KmsException.BadRequest($"function {record.Name} is registered again: a purge only removes a tombstone (cancel update {update.Id})");
        }

        // A proposal was checked against the owners and threshold in force when it was made, and another update applied
        // since may have changed either (owners A, B, C with M = 2: one update drops C, another raises M to 3). Applied
        // both, M would exceed the owners, and no update — not even one lowering M — could gather M approvals again.
        var owners = update.Owners ?? record.Owners;
        var required = update.ApprovalsRequired ?? record.ApprovalsRequired;
        if (required > owners.Count)
        {
            throw StrictObject.Invalid(update.ApprovalsRequired is not null ? "approvals_required" : "owners",
                $"approvals_required not above the number of owners: applying update {update.Id} now would require {required} approvals of {owners.Count} owners, "
                + $"since an update applied after it was proposed changed the {(update.ApprovalsRequired is not null ? "owners" : "threshold")}; it stays pending, unapplied "
                + $"(cancel it: DELETE morphisms/functions/{record.Name}/updates/{update.Id})");
        }

        var revisions = update.ReferenceValues is { } values ? Revise(record, values, now) : record.Revisions;
        var applied = update with
        {
            Status = UpdateStatus.Applied,
            ResolvedTime = now,
            AppliedRevision = update.ReferenceValues is null ? null : revisions[^1].Revision,
        };
        var moves = update.SecretPath is { } path && path != record.EffectiveSecretPath;
        var changed = record with
        {
            Revisions = revisions,
            Owners = owners,
            ApprovalsRequired = required,
            SecretPath = update.SecretPath ?? record.SecretPath,
            FormerSecretPaths = moves ? [.. record.FormerSecretPaths.Where(p => p != update.SecretPath).Append(record.EffectiveSecretPath).Distinct()] : record.FormerSecretPaths,
            DeletedTime = update.Kind == UpdateKind.Restore ? null : record.DeletedTime,
        };
        return (update.Kind == UpdateKind.Restore ? CancelPending(changed, now, except: update.Id).Record : changed, applied);
    }

    private async Task<(FunctionRecord, PendingUpdate, IReadOnlyList<int>)> ChangeUpdateAsync(
        string name, int id, Func<FunctionRecord, PendingUpdate, DateTimeOffset, (FunctionRecord, PendingUpdate)> change, CancellationToken ct)
    {
        await _writes.WaitAsync(ct).ConfigureAwait(false);
        try
        {
            var record = await GetOrTombstoneAsync(name, ct).ConfigureAwait(false) ?? throw KmsException.NotFound();
            var index = record.Updates.FindIndex(u => u.Id == id);
            if (index < 0)
            {
                throw new KmsException(404, $"function {name} has no update {id}");
            }

            if (record.Updates[index].Status != UpdateStatus.Pending)
            {
                throw KmsException.BadRequest($"update {id} is {record.Updates[index].Status}, not pending");
            }

            var now = time.GetUtcNow();
            var (changed, update) = change(record, record.Updates[index], now);
            var updates = changed.Updates.ToList();
            updates[index] = update;

            // A change keeps the list's order and length (see CancelPending), so positions still match.
            List<int> cancelled = [.. updates.Where((u, i) => i != index && u.Status == UpdateStatus.Cancelled && record.Updates[i].Status == UpdateStatus.Pending).Select(u => u.Id)];
            changed = changed with { Updates = KeepRecent(updates), UpdatedTime = now };

            // Every path the record as stored holds anew (an update raising the threshold from 0 makes the function
            // hold the paths it moved away from and its other pending moves again), not only its approved one.
            await RequireClaimsUnheldAsync(record, changed, ct).ConfigureAwait(false);
            if (update.Status == UpdateStatus.Applied && update.SecretPath is { } moved && moved != record.EffectiveSecretPath)
            {
                await RequireEmptyAsync(moved, ct).ConfigureAwait(false);
            }
            if (update is { Kind: UpdateKind.Purge, Status: UpdateStatus.Applied })
            {
                await PurgeAsync(changed, ct).ConfigureAwait(false);
            }
            else
            {
                await SaveAsync(changed, record.IsTombstone, ct).ConfigureAwait(false);
            }

            return (changed, update, cancelled);
        }
        finally
        {
            RegistryChanged();
            _writes.Release();
        }
    }

    /// <summary>Every pending update and the most recent resolved ones, so the record cannot grow without bound.</summary>
    private static List<PendingUpdate> KeepRecent(List<PendingUpdate> updates)
    {
        var resolved = updates.Where(u => u.Status != UpdateStatus.Pending).ToList();
        var drop = resolved.Take(Math.Max(0, resolved.Count - MaxResolvedUpdatesKept)).ToHashSet();
        return [.. updates.Where(u => !drop.Contains(u))];
    }
}
