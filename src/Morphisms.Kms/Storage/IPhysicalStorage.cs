namespace Morphisms.Kms.Storage;

/// <summary>
/// The narrow durable key/value store the KMS sits on, modelled on Vault's physical backend.
/// Values reaching it are already encrypted by the barrier (except the seal's own records), so an
/// implementation never sees plaintext secrets. A completed put, delete or transaction must be durable:
/// it survives the process being killed right after the call returns.
/// </summary>
public interface IPhysicalStorage : IAsyncDisposable
{
    /// <summary>Reads the value at <paramref name="key"/>, or null when absent.</summary>
    Task<byte[]?> GetAsync(string key, CancellationToken cancellationToken = default);

    /// <summary>Creates or replaces the value at <paramref name="key"/>.</summary>
    Task PutAsync(string key, ReadOnlyMemory<byte> value, CancellationToken cancellationToken = default);

    /// <summary>Deletes the value at <paramref name="key"/>; deleting an absent key is not an error.</summary>
    Task DeleteAsync(string key, CancellationToken cancellationToken = default);

    /// <summary>
    /// Lists the immediate children under <paramref name="prefix"/> as Vault does: names relative to the
    /// prefix, sorted ordinally, with a trailing <c>/</c> for "folders" (keys that continue past a slash).
    /// </summary>
    Task<IReadOnlyList<string>> ListAsync(string prefix, CancellationToken cancellationToken = default);

    /// <summary>Applies every operation or none of them.</summary>
    Task TransactAsync(IReadOnlyList<StorageOperation> operations, CancellationToken cancellationToken = default);

    /// <summary>
    /// Every key and value, ordinally sorted, for backups. The built-in stores read them atomically (one lock, one
    /// SQLite statement); this fallback walks the key space and is only consistent when nothing writes meanwhile.
    /// </summary>
    async Task<IReadOnlyList<KeyValuePair<string, byte[]>>> ReadAllAsync(CancellationToken cancellationToken = default)
    {
        var result = new List<KeyValuePair<string, byte[]>>();
        var folders = new Stack<string>([""]);
        while (folders.TryPop(out var folder))
        {
            foreach (var child in await ListAsync(folder, cancellationToken).ConfigureAwait(false))
            {
                if (child.EndsWith('/'))
                {
                    folders.Push(folder + child);
                }
                else if (await GetAsync(folder + child, cancellationToken).ConfigureAwait(false) is { } value)
                {
                    result.Add(new(folder + child, value));
                }
            }
        }

        result.Sort((a, b) => string.CompareOrdinal(a.Key, b.Key));
        return result;
    }
}

/// <summary>One write inside <see cref="IPhysicalStorage.TransactAsync"/>: a put when <see cref="Value"/> is set, else a delete.</summary>
/// <param name="Key">The key written or deleted.</param>
/// <param name="Value">The new value, or null to delete.</param>
public sealed record StorageOperation(string Key, ReadOnlyMemory<byte>? Value)
{
    /// <summary>A put of <paramref name="value"/> at <paramref name="key"/>.</summary>
    public static StorageOperation Put(string key, ReadOnlyMemory<byte> value) => new(key, value);

    /// <summary>A delete of <paramref name="key"/>.</summary>
    public static StorageOperation Delete(string key) => new(key, null);
}
