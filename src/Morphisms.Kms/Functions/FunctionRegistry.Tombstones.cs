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

    /// <summary>A deleted function's tombstone, or null.</summary>
    public Task<FunctionRecord?> GetTombstoneAsync(string name, CancellationToken ct) =>
        storage.GetJsonAsync<FunctionRecord>(TombstonePrefix + name, ct);

    /// <summary>The registered function or else its tombstone: what registering and the update routes act on.</summary>
    public async Task<FunctionRecord?> GetOrTombstoneAsync(string name, CancellationToken ct) =>
        await GetAsync(name, ct).ConfigureAwait(false) ?? await GetTombstoneAsync(name, ct).ConfigureAwait(false);

    /// <summary>
    /// Removes a registered function; one that requires owner approval becomes a tombstone in the same transaction,
    /// with its pending updates cancelled (they were proposed for the function that is gone). Null when there was no
    /// registered function (a tombstone is left alone: only its owners can release the name).
    /// </summary>
    public async Task<FunctionDeletion?> DeleteAsync(string name, CancellationToken ct)
    {
        await _writes.WaitAsync(ct).ConfigureAwait(false);
        try
        {
            var record = await GetAsync(name, ct).ConfigureAwait(false);
            if (record is null)
            {
                return null;
            }

            if (record.ApprovalsRequired == 0)
            {
                await storage.DeleteAsync(Prefix + name, ct).ConfigureAwait(false);
                return new FunctionDeletion(record, null, []);
            }

            var now = time.GetUtcNow();
            var (tombstone, cancelled) = CancelPending(record with { DeletedTime = now, UpdatedTime = now }, now);
            tombstone = tombstone with { Updates = KeepRecent(tombstone.Updates) };
            await storage.TransactAsync([(Prefix + name, null), (TombstonePrefix + name, SecureStorageJson.ToJson(tombstone))], ct).ConfigureAwait(false);
            return new FunctionDeletion(record, tombstone, cancelled);
        }
        finally
        {
            _writes.Release();
        }
    }

    /// <summary>
    /// Proposes removing a tombstone for good (M of its owners must approve); answers the purge already pending
    /// instead of proposing a second one.
    /// </summary>
    /// <exception cref="KmsException">404 no tombstone, 400 too many pending updates.</exception>
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

            var now = time.GetUtcNow();
            var update = new PendingUpdate { Id = tombstone.NextUpdateId, Kind = UpdateKind.Purge, Status = UpdateStatus.Pending, CreatedTime = now };
            var changed = tombstone with { Updates = KeepRecent([.. tombstone.Updates, update]), NextUpdateId = tombstone.NextUpdateId + 1, UpdatedTime = now };
            await storage.PutJsonAsync(TombstonePrefix + name, changed, ct).ConfigureAwait(false);
            return (changed, update, true);
        }
        finally
        {
            _writes.Release();
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
/// <param name="Record">The function as it was.</param>
/// <param name="Tombstone">The tombstone it left (it required owner approval), or null.</param>
/// <param name="CancelledUpdates">Its pending updates, cancelled by the delete.</param>
internal sealed record FunctionDeletion(FunctionRecord Record, FunctionRecord? Tombstone, IReadOnlyList<int> CancelledUpdates);
