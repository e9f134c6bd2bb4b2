using Morphisms.Kms.Barrier;

namespace Morphisms.Kms.Functions;

/// <summary>The secret bundles owner-approved functions hold, for <see cref="OwnedBundleGuard"/>.</summary>
internal sealed partial class FunctionRegistry
{
    private long _generation;
    private OwnedBundles? _owned;

    /// <summary>
    /// Every approved secret path of a function (or tombstone) whose owners approve its changes, mapped to the function
    /// that holds it: the one registered first, when several name the same path, so a later registration cannot share
    /// a bundle by naming its path. Read on every KV request that is not root's, so it is kept in memory and read again
    /// from storage only after a registry write.
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

    /// <summary>Called after every registry write, before its lock is released.</summary>
    private void RegistryChanged() => Interlocked.Increment(ref _generation);

    private sealed record OwnedBundles(long Generation, Dictionary<string, FunctionRecord> Holders);
}
