using Morphisms.Kms.Storage;

namespace Morphisms.Kms.Tests;

/// <summary>
/// A base for tests' storage wrappers that hold, fail or record some calls: every member is virtual and forwards to
/// <see cref="Inner"/>, so a wrapper overrides only what it changes. <see cref="ReadAllAsync"/> keeps
/// <see cref="IPhysicalStorage"/>'s default (a walk through this wrapper's own <see cref="ListAsync"/> and
/// <see cref="GetAsync"/>, so their overrides apply to it, and not atomic), as a wrapper that did not implement it had;
/// override it to read <see cref="Inner"/> atomically. <see cref="PutAsync"/> and <see cref="DeleteAsync"/> go to the
/// inner store's own, not through <see cref="TransactAsync"/>: a wrapper whose transaction override must see them
/// routes them there itself.
/// </summary>
internal abstract class ForwardingStorage : IPhysicalStorage
{
    /// <param name="inner">The store forwarded to; a new <see cref="InMemoryStorage"/> when null.</param>
    protected ForwardingStorage(InMemoryStorage? inner = null) => Inner = inner ?? new();

    /// <summary>The store every call is forwarded to (for tests that look at what reached it).</summary>
    public InMemoryStorage Inner { get; }

    /// <inheritdoc />
    public virtual Task<byte[]?> GetAsync(string key, CancellationToken cancellationToken = default) => Inner.GetAsync(key, cancellationToken);

    /// <inheritdoc />
    public virtual Task PutAsync(string key, ReadOnlyMemory<byte> value, CancellationToken cancellationToken = default) => Inner.PutAsync(key, value, cancellationToken);

    /// <inheritdoc />
    public virtual Task DeleteAsync(string key, CancellationToken cancellationToken = default) => Inner.DeleteAsync(key, cancellationToken);

    /// <inheritdoc />
    public virtual Task<IReadOnlyList<string>> ListAsync(string prefix, CancellationToken cancellationToken = default) => Inner.ListAsync(prefix, cancellationToken);

    /// <inheritdoc />
    public virtual Task TransactAsync(IReadOnlyList<StorageOperation> operations, CancellationToken cancellationToken = default) => Inner.TransactAsync(operations, cancellationToken);

    /// <summary>
    /// <see cref="IPhysicalStorage"/>'s default: walks this wrapper's <see cref="ListAsync"/> and <see cref="GetAsync"/>
    /// (a class cannot call an interface's default body on itself once it implements the member, so a view of this
    /// wrapper that does not implement it runs it).
    /// </summary>
    public virtual Task<IReadOnlyList<KeyValuePair<string, byte[]>>> ReadAllAsync(CancellationToken cancellationToken = default) =>
        ((IPhysicalStorage)new DefaultReadAll(this)).ReadAllAsync(cancellationToken);

    /// <inheritdoc />
    public virtual ValueTask DisposeAsync() => Inner.DisposeAsync();

    /// <summary>Reads through the wrapper and leaves <see cref="IPhysicalStorage.ReadAllAsync"/> to the interface; never written to.</summary>
    private sealed class DefaultReadAll(ForwardingStorage storage) : IPhysicalStorage
    {
        public Task<byte[]?> GetAsync(string key, CancellationToken cancellationToken = default) => storage.GetAsync(key, cancellationToken);

        public Task<IReadOnlyList<string>> ListAsync(string prefix, CancellationToken cancellationToken = default) => storage.ListAsync(prefix, cancellationToken);

        public Task PutAsync(string key, ReadOnlyMemory<byte> value, CancellationToken cancellationToken = default) => throw new NotSupportedException();

        public Task DeleteAsync(string key, CancellationToken cancellationToken = default) => throw new NotSupportedException();

        public Task TransactAsync(IReadOnlyList<StorageOperation> operations, CancellationToken cancellationToken = default) => throw new NotSupportedException();

        public ValueTask DisposeAsync() => ValueTask.CompletedTask;
    }
}
