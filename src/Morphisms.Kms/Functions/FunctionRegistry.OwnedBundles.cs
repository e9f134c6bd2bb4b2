using Morphisms.Kms.Barrier;
using Morphisms.Kms.Http;

namespace Morphisms.Kms.Functions;

/// <summary>The secret bundles owner-approved functions hold, for <see cref="OwnedBundleGuard"/>.</summary>
internal sealed partial class FunctionRegistry
{
    private long _generation;
    private OwnedBundles? _owned;

    /// <summary>
    /// Every approved secret path of a function (or tombstone) whose owners approve its changes, mapped to the function
    /// that holds it. A write never gives an owned function a path another one holds (<see cref="RequireUnheldAsync"/>),
    /// so several hold one only in a registry written before that was checked: then the one registered first. Read on
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

        var holders = new Dictionary<string, FunctionRecord>(StringComparer.Ordinal);
        foreach (var prefix in new[] { Prefix, TombstonePrefix })
        {
            foreach (var name in await storage.ListAsync(prefix, ct).ConfigureAwait(false))
            {
                if (await storage.GetJsonAsync<FunctionRecord>(prefix + name, ct).ConfigureAwait(false) is not { ApprovalsRequired: > 0 } record)
                {
                    continue;
                }

                var path = record.EffectiveSecretPath;
                if (!holders.TryGetValue(path, out var holder)
                    || (record.CreatedTime, record.Name).CompareTo((holder.CreatedTime, holder.Name)) < 0)
                {
                    holders[path] = record;
                }
            }
        }

        Volatile.Write(ref _owned, new OwnedBundles(generation, holders));
        return holders;
    }

    /// <summary>
    /// The secret path <paramref name="after"/> claims as an owned function's that <paramref name="before"/> (the same
    /// function before a write, or null) did not: its path when it becomes owned or, owned, moves; else null.
    /// </summary>
    private static string? Claims(FunctionRecord? before, FunctionRecord after) =>
        after.ApprovalsRequired > 0 && (before is not { ApprovalsRequired: > 0 } || before.EffectiveSecretPath != after.EffectiveSecretPath)
            ? after.EffectiveSecretPath
            : null;

    /// <summary>
    /// Refuses (400, nothing written) to let function <paramref name="name"/> claim <paramref name="path"/> as an owned
    /// function's bundle while another owned function or tombstone holds it. Called under the registry lock, so no
    /// other write can claim the path in between. A bundle is its first claimant's for good: were it given to the
    /// function registered first instead, whoever may write functions with no approvals required (the serving host)
    /// could register a decoy early and later, in one write that applies at once, make it owned with that path and a
    /// measurement of its own, and read the bundle from the decoy's instance while the real function's were refused.
    /// </summary>
    private async Task RequireUnheldAsync(string name, string path, CancellationToken ct)
    {
        if ((await OwnedBundlesAsync(ct).ConfigureAwait(false)).TryGetValue(path, out var holder) && holder.Name != name)
        {
            throw KmsException.BadRequest($"invalid value for parameter 'secret_path': {path} is the secret bundle of function '{holder.Name}'"
                + (holder.IsTombstone ? " (deleted; its tombstone keeps the path)" : "")
                + ", whose owners approve its changes: another owned function may not name it");
        }
    }

    /// <summary>Called after every registry write, before its lock is released.</summary>
    private void RegistryChanged() => Interlocked.Increment(ref _generation);

    private sealed record OwnedBundles(long Generation, Dictionary<string, FunctionRecord> Holders);
}
