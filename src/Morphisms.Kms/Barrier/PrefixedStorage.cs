using Morphisms.Kms.Http;

namespace Morphisms.Kms.Barrier;

/// <summary>
/// A view of <see cref="ISecureStorage"/> under a fixed prefix, so a mount cannot reach outside its own keys. The view
/// can be closed (<see cref="CloseAsync"/>): a request dispatched to a mount holds its view, not the mount table, so
/// unmounting closes the view first and waits for the operations under way, and nothing written after the mount's
/// keys were listed for deletion can be left behind under a prefix nothing references.
/// </summary>
internal sealed class PrefixedStorage(ISecureStorage inner, string prefix) : ISecureStorage
{
    private readonly Lock _lock = new();
    private string? _closed;
    private int _inFlight;
    private TaskCompletionSource? _drained;

    /// <summary>The prefix every key of this view is stored under.</summary>
    public string Prefix { get; } = prefix;

    /// <summary>The storage this view prefixes.</summary>
    public ISecureStorage Inner { get; } = inner;

    public async Task<byte[]?> GetAsync(string key, CancellationToken ct = default)
    {
        using var inFlight = Enter();
        return await Inner.GetAsync(Prefix + key, ct).ConfigureAwait(false);
    }

    public async Task PutAsync(string key, byte[] value, CancellationToken ct = default)
    {
        using var inFlight = Enter();
        await Inner.PutAsync(Prefix + key, value, ct).ConfigureAwait(false);
    }

    public async Task DeleteAsync(string key, CancellationToken ct = default)
    {
        using var inFlight = Enter();
        await Inner.DeleteAsync(Prefix + key, ct).ConfigureAwait(false);
    }

    public async Task<IReadOnlyList<string>> ListAsync(string prefix, CancellationToken ct = default)
    {
        using var inFlight = Enter();
        return await Inner.ListAsync(Prefix + prefix, ct).ConfigureAwait(false);
    }

    public async Task TransactAsync(IReadOnlyList<(string Key, byte[]? Value)> operations, CancellationToken ct = default)
    {
        using var inFlight = Enter();
        await Inner.TransactAsync([.. operations.Select(o => (Prefix + o.Key, o.Value))], ct).ConfigureAwait(false);
    }

    /// <summary>
    /// Starts one operation on the storage beneath, to be disposed when it has ended; <see cref="WriteSet"/> takes one
    /// for the commit of writes it gathered through this view.
    /// </summary>
    /// <exception cref="KmsException">503 with the reason given to <see cref="CloseAsync"/>, once the view is closed.</exception>
    public InFlight Enter()
    {
        lock (_lock)
        {
            if (_closed is { } reason)
            {
                throw new KmsException(503, reason);
            }

            _inFlight++;
            return new InFlight(this);
        }
    }

    /// <summary>
    /// Refuses every later operation with a 503 naming <paramref name="reason"/>, then waits until the operations under
    /// way have ended. If <paramref name="ct"/> ends the wait first the view is reopened and the cancellation thrown.
    /// </summary>
    public async Task CloseAsync(string reason, CancellationToken ct)
    {
        Task drained;
        lock (_lock)
        {
            _closed = reason;
            drained = _inFlight == 0 ? Task.CompletedTask : (_drained ??= new(TaskCreationOptions.RunContinuationsAsynchronously)).Task;
        }

        try
        {
            await drained.WaitAsync(ct).ConfigureAwait(false);
        }
        catch (OperationCanceledException)
        {
            Reopen();
            throw;
        }
    }

    /// <summary>Accepts operations again (an unmount that did not complete).</summary>
    public void Reopen()
    {
        lock (_lock)
        {
            _closed = null;
        }
    }

    private void Exit()
    {
        lock (_lock)
        {
            if (--_inFlight == 0 && _drained is { } drained)
            {
                _drained = null;
                drained.TrySetResult();
            }
        }
    }

    /// <summary>One operation under way on the view (<see cref="Enter"/>).</summary>
    public readonly struct InFlight(PrefixedStorage view) : IDisposable
    {
        /// <inheritdoc />
        public void Dispose() => view.Exit();
    }
}
