namespace Morphisms.Kms.Barrier;

/// <summary>A view of <see cref="ISecureStorage"/> under a fixed prefix, so a mount cannot reach outside its own keys.</summary>
internal sealed class PrefixedStorage(ISecureStorage inner, string prefix) : ISecureStorage
{
    /// <summary>The prefix every key of this view is stored under.</summary>
    public string Prefix { get; } = prefix;

    /// <summary>The storage this view prefixes.</summary>
    public ISecureStorage Inner { get; } = inner;

    public Task<byte[]?> GetAsync(string key, CancellationToken ct = default) => Inner.GetAsync(Prefix + key, ct);

    public Task PutAsync(string key, byte[] value, CancellationToken ct = default) => Inner.PutAsync(Prefix + key, value, ct);

    public Task DeleteAsync(string key, CancellationToken ct = default) => Inner.DeleteAsync(Prefix + key, ct);

    public Task<IReadOnlyList<string>> ListAsync(string prefix, CancellationToken ct = default) => Inner.ListAsync(Prefix + prefix, ct);

    public Task TransactAsync(IReadOnlyList<(string Key, byte[]? Value)> operations, CancellationToken ct = default) =>
        Inner.TransactAsync([.. operations.Select(op => (Prefix + op.Key, op.Value))], ct);
}
