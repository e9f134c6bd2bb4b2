namespace Morphisms.Kms.Barrier;

/// <summary>A view of <see cref="ISecureStorage"/> under a fixed prefix, so a mount cannot reach outside its own keys.</summary>
internal sealed class PrefixedStorage(ISecureStorage inner, string prefix) : ISecureStorage
{
    /// <summary>The prefix every key of this view is stored under.</summary>
    public string Prefix { get; } = prefix;

    public Task<byte[]?> GetAsync(string key, CancellationToken ct = default) => inner.GetAsync(Prefix + key, ct);

    public Task PutAsync(string key, byte[] value, CancellationToken ct = default) => inner.PutAsync(Prefix + key, value, ct);

    public Task DeleteAsync(string key, CancellationToken ct = default) => inner.DeleteAsync(Prefix + key, ct);

    public Task<IReadOnlyList<string>> ListAsync(string prefix, CancellationToken ct = default) => inner.ListAsync(Prefix + prefix, ct);

    public Task TransactAsync(IReadOnlyList<(string Key, byte[]? Value)> operations, CancellationToken ct = default) =>
        inner.TransactAsync([.. operations.Select(op => (Prefix + op.Key, op.Value))], ct);
}
