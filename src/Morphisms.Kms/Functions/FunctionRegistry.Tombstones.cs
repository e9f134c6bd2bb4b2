using Morphisms.Kms.Barrier;
using Morphisms.Kms.Http;
using Morphisms.Kms.Updates;

namespace Morphisms.Kms.Functions;

/// <summary>
/// Deleting a function and its tombstone. Deleting is immediate (stopping a function is the operator's call), but a
/// function that requires owner approval leaves its record behind at <c>morphisms/tombstones/NAME</c>, so that
/// registering the name again is an update of that function: otherwise whoever may delete and create functions could
/// re-register the name with values its owners never approved, and the new code would get the function's identity
/// (the name in its certificates, the policies named after it).
/// </summary>
internal sealed partial class FunctionRegistry
{
    private const string TombstonePrefix = "morphisms/tombstones/";
    private const string DeletedPrefix = "morphisms/deleted/";

    /// <summary>A deleted function's tombstone, or null.</summary>
    public Task<FunctionRecord?> GetTombstoneAsync(string name, CancellationToken ct) =>
        storage.GetJsonAsync<FunctionRecord>(TombstonePrefix + name, ct);

    /// <summary>
    /// The last revision number <paramref name="name"/> had when it was last deleted (its mark), or 0 when it never was
    /// since marks are kept: a revision at or below it that the registered function lacks was the deleted function's.
    /// </summary>
    public async Task<int> DeletedUpToAsync(string name, CancellationToken ct) =>
        (await storage.GetJsonAsync<DeletedName>(DeletedPrefix + name, ct).ConfigureAwait(false))?.LastRevision ?? 0;

    /// <summary>The registered function or else its tombstone: what registering and the update routes act on.</summary>
    public async Task<FunctionRecord?> GetOrTombstoneAsync(string name, CancellationToken ct) =>
        await GetAsync(name, ct).ConfigureAwait(false) ?? await GetTombstoneAsync(name, ct).ConfigureAwait(false);

    /// <summary>
    /// Removes a registered function; one that requires owner approval becomes a tombstone in the same transaction,
    /// with its pending updates cancelled (they were proposed for the function that is gone). The same transaction
    /// records the last revision number the name reached (<see cref="DeletedName"/>), so that a later registration of
    /// the name numbers its revisions after it and what is revoked for this deletion can be told from what a later
    /// registration is issued. With no registered function (a tombstone is left alone: only its owners can release the
    /// name) nothing is removed, and the answer still carries that number, for a DELETE again to finish revoking.
    /// </summary>
    public async Task<FunctionDeletion> DeleteAsync(string name, CancellationToken ct)
    {
        await _writes.WaitAsync(ct).ConfigureAwait(false);
        try
        {
            var record = await GetAsync(name, ct).ConfigureAwait(false);
            var marked = await storage.GetJsonAsync<DeletedName>(DeletedPrefix + name, ct).ConfigureAwait(false);
            var now = time.GetUtcNow();
            if (record is null)
            {
                var left = await GetTombstoneAsync(name, ct).ConfigureAwait(false);
                var reached = await LastRevisionAsync(name, marked, left, ct).ConfigureAwait(false);

                // Only a deletion from before these marks were kept gets here with more than its mark says: recorded now,
                // under the lock, so no registration can take one of those numbers while this DELETE revokes them.
                if (reached > (marked?.LastRevision ?? 0))
                {
                    await storage.PutJsonAsync(DeletedPrefix + name, new DeletedName { LastRevision = reached, DeletedTime = left?.DeletedTime ?? now }, ct).ConfigureAwait(false);
                }

                return new FunctionDeletion(null, left, [], reached);
            }

            var last = await LastRevisionAsync(name, marked, record, ct).ConfigureAwait(false);
            var mark = (DeletedPrefix + name, (byte[]?)SecureStorageJson.ToJson(new DeletedName { LastRevision = last, DeletedTime = now }));
            if (record.ApprovalsRequired == 0)
            {
                await storage.TransactAsync([(Prefix + name, null), mark], ct).ConfigureAwait(false);
                return new FunctionDeletion(record, null, [], last);
            }

            var (tombstone, cancelled) = CancelPending(record with { DeletedTime = now, UpdatedTime = now }, now);
            tombstone = tombstone with { Updates = KeepRecent(tombstone.Updates) };
            await storage.TransactAsync([(Prefix + name, null), (TombstonePrefix + name, SecureStorageJson.ToJson(tombstone)), mark], ct).ConfigureAwait(false);
            return new FunctionDeletion(record, tombstone, cancelled, last);
        }
        finally
        {
            RegistryChanged();
            _writes.Release();
        }
    }

    /// <summary>
    /// Proposes removing a tombstone for good (M of its owners must approve); answers the purge already pending
    /// instead of proposing a second one.
    /// </summary>
    /// <exception cref="KmsException">404 no tombstone, 400 too many pending updates or a path it holds not empty (<see cref="RequireReleasedPathsEmptyAsync"/>).</exception>
    public async Task<(FunctionRecord Tombstone, PendingUpdate Update, bool Proposed)> ProposePurgeAsync(string name, CancellationToken ct)
    {
        await _writes.WaitAsync(ct).ConfigureAwait(false);
        try
        {
            var tombstone = await GetTombstoneAsync(name, ct).ConfigureAwait(false)
                ?? throw new KmsException(404, $"function {name} has no tombstone");
            if (tombstone.Updates.Find(u => u.Kind == UpdateKind.Purge && u.Status == UpdateStatus.Pending) is { } pending)
            {
                return (tombstone, pending, false);
            }

            if (tombstone.Updates.Count(u => u.Status == UpdateStatus.Pending) >= MaxPendingUpdates)
            {
                throw KmsException.BadRequest($"function {name} already has {MaxPendingUpdates} pending updates: approve or cancel some first");
            }

            await RequireReleasedPathsEmptyAsync(tombstone, ct).ConfigureAwait(false);
            var now = time.GetUtcNow();
            var update = new PendingUpdate { Id = tombstone.NextUpdateId, Kind = UpdateKind.Purge, Status = UpdateStatus.Pending, CreatedTime = now };
            var changed = tombstone with { Updates = KeepRecent([.. tombstone.Updates, update]), NextUpdateId = tombstone.NextUpdateId + 1, UpdatedTime = now };
            await storage.PutJsonAsync(TombstonePrefix + name, changed, ct).ConfigureAwait(false);
            return (changed, update, true);
        }
        finally
        {
            RegistryChanged();
            _writes.Release();
        }
    }

    /// <summary>
    /// The highest revision number <paramref name="name"/> has reached: its mark and <paramref name="record"/> (the
    /// function or its tombstone), and without a mark the issued index, for a function deleted before marks were kept
    /// (a mark covers the index: a login indexes the revision it matched, which the deletion's mark counts). 0 for a
    /// name never registered.
    /// </summary>
    private async Task<int> LastRevisionAsync(string name, DeletedName? marked, FunctionRecord? record, CancellationToken ct)
    {
        var last = Math.Max(marked?.LastRevision ?? 0, record?.Revisions.Max(r => (int?)r.Revision) ?? 0);
        if (marked is not null)
        {
            return last;
        }

        var issued = await IssuedCredentials.RevisionsAsync(storage, name, ct).ConfigureAwait(false);
        return issued.Count == 0 ? last : Math.Max(last, issued.Max());
    }

    /// <summary>
    /// The number a fresh registration of <paramref name="name"/> (no record, no tombstone) numbers its revisions
    /// after: never one a deleted function of the same name had, so <c>morphisms/issued/NAME/N/</c> is never shared
    /// and revoking what a deletion left behind cannot reach the new function.
    /// </summary>
    private async Task<int> LastDeletedRevisionAsync(string name, CancellationToken ct) =>
        await LastRevisionAsync(name, await storage.GetJsonAsync<DeletedName>(DeletedPrefix + name, ct).ConfigureAwait(false), null, ct).ConfigureAwait(false);

    /// <summary>The purge of <paramref name="tombstone"/>: gone, with its last revision kept in the name's mark (a tombstone from before marks were kept has none).</summary>
    /// <exception cref="KmsException">400 a path it holds is not empty (<see cref="RequireReleasedPathsEmptyAsync"/>), nothing written.</exception>
    private async Task PurgeAsync(FunctionRecord tombstone, CancellationToken ct)
    {
        // Checked again as it applies: its owners (or root) may have written one of its paths since the proposal.
        await RequireReleasedPathsEmptyAsync(tombstone, ct).ConfigureAwait(false);
        var marked = await storage.GetJsonAsync<DeletedName>(DeletedPrefix + tombstone.Name, ct).ConfigureAwait(false);
        var last = Math.Max(marked?.LastRevision ?? 0, tombstone.Revisions.Max(r => (int?)r.Revision) ?? 0);
        var mark = marked is not null && marked.LastRevision >= last ? null
            : SecureStorageJson.ToJson(new DeletedName { LastRevision = last, DeletedTime = tombstone.DeletedTime ?? time.GetUtcNow() });
        await storage.TransactAsync(mark is null ? [(TombstonePrefix + tombstone.Name, null)] : [(TombstonePrefix + tombstone.Name, null), (DeletedPrefix + tombstone.Name, mark)], ct).ConfigureAwait(false);
    }

    /// <summary>
    /// Refuses (400 naming them, nothing written) to purge <paramref name="tombstone"/> while a path it holds — its
    /// approved one, those it moved away from, those of its pending moves — has a KV key, even a deleted or destroyed one
    /// (its metadata), as a move goes only to an empty path. The purge releases these paths: nothing guards them after
    /// it, so the host could register the name afresh without owners, naming one, and its own code would read the
    /// deleted function's secrets (or any policy it writes would). The owners, who manage them, delete the keys first.
    /// A path another owned function holds (only in a registry written before paths were exclusive) stays guarded and
    /// is not asked for.
    /// </summary>
    private async Task RequireReleasedPathsEmptyAsync(FunctionRecord tombstone, CancellationToken ct)
    {
        var holders = await OwnedBundlesAsync(ct).ConfigureAwait(false);
        List<string> kept = [];
        foreach (var path in PathsHeldBy(tombstone).Select(p => p.Path).Distinct(StringComparer.Ordinal))
        {
            if ((!holders.TryGetValue(path, out var holder) || holder.Name == tombstone.Name) && await kvKeyExists(path, ct).ConfigureAwait(false))
            {
                kept.Add(path);
            }
        }

        if (kept.Count > 0)
        {
            throw KmsException.BadRequest($"function {tombstone.Name}'s tombstone still holds KV keys at {string.Join(", ", kept)}: a purge releases the paths, "
                + "after which nothing keeps the deleted function's secrets from a function registered afresh under the name (or any policy); "
                + "its owners delete each key's metadata first (DELETE on its metadata/ path), then the purge can be proposed or approved");
        }
    }

    /// <summary>
    /// Cancels every pending update of <paramref name="record"/> but <paramref name="except"/>; returns the ids
    /// cancelled. The list keeps its order and length, so a caller holding an index into it may still use it.
    /// </summary>
    private static (FunctionRecord Record, List<int> Cancelled) CancelPending(FunctionRecord record, DateTimeOffset now, int except = 0)
    {
        bool Cancels(PendingUpdate u) => u.Status == UpdateStatus.Pending && u.Id != except;
        var cancelled = record.Updates.Where(Cancels).Select(u => u.Id).ToList();
        var updates = record.Updates.Select(u => Cancels(u) ? u with { Status = UpdateStatus.Cancelled, ResolvedTime = now } : u).ToList();
        return (record with { Updates = updates }, cancelled);
    }
}

/// <summary>What deleting a function did.</summary>
/// <param name="Record">The function as it was, or null when none was registered (nothing was deleted).</param>
/// <param name="Tombstone">The tombstone it left (it required owner approval), or, with no <paramref name="Record"/>, the one left before; else null.</param>
/// <param name="CancelledUpdates">Its pending updates, cancelled by the delete.</param>
/// <param name="LastRevision">
/// The highest revision number the name reached before this deletion (0 if none): revoking for it goes up to this
/// number and no further, because a later registration of the name numbers its revisions after it.
/// </param>
internal sealed record FunctionDeletion(FunctionRecord? Record, FunctionRecord? Tombstone, IReadOnlyList<int> CancelledUpdates, int LastRevision);

/// <summary>
/// What stays of a deleted name at <c>morphisms/deleted/NAME</c>, written in the transaction that deletes the
/// function and kept for good (one small record per name ever deleted): the last revision number it reached.
/// </summary>
internal sealed record DeletedName
{
    /// <summary>The highest revision number of the name when it was last deleted.</summary>
    public required int LastRevision { get; init; }

    /// <summary>When that was (for a deletion from before marks were kept, when a DELETE again or a purge recorded it).</summary>
    public DateTimeOffset DeletedTime { get; init; }
}
