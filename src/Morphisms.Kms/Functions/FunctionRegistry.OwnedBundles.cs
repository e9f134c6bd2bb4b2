using Morphisms.Kms.Barrier;
using Morphisms.Kms.Http;
using Morphisms.Kms.Updates;

namespace Morphisms.Kms.Functions;

/// <summary>The secret bundles owner-approved functions hold, for <see cref="OwnedBundleGuard"/>.</summary>
internal sealed partial class FunctionRegistry
{
    private long _generation;
    private OwnedBundles? _owned;

    /// <summary>
    /// Every secret path a function (or tombstone) whose owners approve its changes holds, mapped to that function: its
    /// approved path, the paths it moved away from (<see cref="FunctionRecord.FormerSecretPaths"/>) and the paths its
    /// pending updates would move it to — held from the proposal on, so that nobody but its owners (and root) can
    /// write there before the move applies (<see cref="RequireEmptyAsync"/>). A write never gives an owned function a
    /// path another one holds (<see cref="RequireUnheldAsync"/>), so several hold one only in a registry written
    /// before that was checked: then a held path beats a pending one, and the function registered first wins. Read on
    /// every KV request that is not root's, so it is kept in memory and read again from storage only after a registry
    /// write.
    /// </summary>
    public async ValueTask<IReadOnlyDictionary<string, FunctionRecord>> OwnedBundlesAsync(CancellationToken ct)
    {
        // The generation is read before storage: a write committed while this reads makes the result stale, and the
        // write's increment makes the next call read again.
        var generation = Volatile.Read(ref _generation);
        if (Volatile.Read(ref _owned) is { } cached && cached.Generation == generation)
        {
            return cached.Holders;
        }

        var claims = new Dictionary<string, (bool Pending, FunctionRecord Record)>(StringComparer.Ordinal);
        foreach (var prefix in new[] { Prefix, TombstonePrefix })
        {
            foreach (var name in await storage.ListAsync(prefix, ct).ConfigureAwait(false))
            {
                if (await storage.GetJsonAsync<FunctionRecord>(prefix + name, ct).ConfigureAwait(false) is not { ApprovalsRequired: > 0 } record)
                {
                    continue;
                }

                foreach (var (path, pending) in PathsHeldBy(record))
                {
                    if (!claims.TryGetValue(path, out var claim)
                        || (pending, record.CreatedTime, record.Name).CompareTo((claim.Pending, claim.Record.CreatedTime, claim.Record.Name)) < 0)
                    {
                        claims[path] = (pending, record);
                    }
                }
            }
        }

        var holders = claims.ToDictionary(c => c.Key, c => c.Value.Record, StringComparer.Ordinal);
        Volatile.Write(ref _owned, new OwnedBundles(generation, holders));
        return holders;
    }

    private static IEnumerable<(string Path, bool Pending)> PathsHeldBy(FunctionRecord record) =>
        record.FormerSecretPaths.Prepend(record.EffectiveSecretPath).Select(p => (p, false))
            .Concat(record.Updates.Where(u => u.Status == UpdateStatus.Pending && u.SecretPath is not null).Select(u => (u.SecretPath!, true)));

    /// <summary>
    /// The secret paths <paramref name="after"/>, an owned function after a write, holds that <paramref name="before"/>
    /// (the same function before it, or null) did not hold at least as firmly (a held path beats a pending one), each
    /// with how it holds it: every path <see cref="PathsHeldBy"/> names, not only the approved one. A function that
    /// becomes owned again holds anew the paths it moved away from and those of its pending moves, which it released
    /// while unowned and another owned function may have claimed since.
    /// </summary>
    private static IEnumerable<(string Path, string? How)> Claims(FunctionRecord? before, FunctionRecord after)
    {
        if (after.ApprovalsRequired <= 0)
        {
            return [];
        }

        List<(string Path, bool Pending)> had = before is { ApprovalsRequired: > 0 } ? [.. PathsHeldBy(before)] : [];
        return PathsHeldBy(after)
            .Where(c => !had.Exists(h => h.Path == c.Path && (!h.Pending || c.Pending)))
            .Select(c => (c.Path, c.Pending ? "the path of a move proposed for it" : c.Path == after.EffectiveSecretPath ? null : "a path it moved away from, which it holds again once owned"))
            .DistinctBy(c => c.Path);
    }

    /// <summary>Refuses (<see cref="RequireUnheldAsync"/>) every path <see cref="Claims"/> finds.</summary>
    private async Task RequireClaimsUnheldAsync(FunctionRecord? before, FunctionRecord after, CancellationToken ct)
    {
        foreach (var (path, how) in Claims(before, after))
        {
            await RequireUnheldAsync(after.Name, path, how, ct).ConfigureAwait(false);
        }
    }

    /// <summary>
    /// Refuses (400, nothing written) to let function <paramref name="name"/> claim <paramref name="path"/> as an owned
    /// function's bundle while another owned function or tombstone holds it; <paramref name="how"/> says how the
    /// function would hold it when that is not as its approved path. Called under the registry lock, so no
    /// other write can claim the path in between. A bundle is its first claimant's for good: were it given to the
    /// function registered first instead, whoever may write functions with no approvals required (the serving host)
    /// could register a decoy early and later, in one write that applies at once, make it owned with that path and a
    /// measurement of its own, and read the bundle from the decoy's instance while the real function's were refused.
    /// </summary>
    private async Task RequireUnheldAsync(string name, string path, string? how, CancellationToken ct)
    {
        if ((await OwnedBundlesAsync(ct).ConfigureAwait(false)).TryGetValue(path, out var holder) && holder.Name != name)
        {
            throw KmsException.BadRequest($"invalid value for parameter 'secret_path': {path} is the secret bundle of function '{holder.Name}'"
                + (holder.IsTombstone ? " (deleted; its tombstone keeps the path)" : "")
                + ", whose owners approve its changes: another owned function may not name it"
                + (how is null ? "" : $" (for function '{name}' it is {how})"));
        }
    }

    /// <summary>
    /// Refuses (400, nothing written) to propose or apply moving an owned function to <paramref name="path"/> while a
    /// KV key is there, even a deleted or destroyed one (its metadata still exists). Whoever wrote there chose what the
    /// approved code would take as its own secrets, and an unowned path is writable by anyone the policies let, the
    /// serving host among them. Checked at the proposal and again when the move applies: from the proposal on the path
    /// is held (<see cref="OwnedBundlesAsync"/>), so only the owners or root could have written there since, yet a
    /// write racing the proposal could have landed after its check. The owners write the bundle once the move applies.
    /// </summary>
    private async Task RequireEmptyAsync(string path, CancellationToken ct)
    {
        if (await kvKeyExists(path, ct).ConfigureAwait(false))
        {
            throw KmsException.BadRequest($"invalid value for parameter 'secret_path': {path} already holds a KV key: an owned function moves its secret bundle only "
                + "to an empty path (no metadata), checked when the move is proposed and again when it applies, since whoever wrote there chose its contents; "
                + "remove the key's metadata (DELETE on its metadata/ path) or choose another path, and write the bundle there once the move applies");
        }
    }

    /// <summary>Called after every registry write, before its lock is released.</summary>
    private void RegistryChanged() => Interlocked.Increment(ref _generation);

    private sealed record OwnedBundles(long Generation, Dictionary<string, FunctionRecord> Holders);
}
