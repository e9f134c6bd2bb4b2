namespace Morphisms.Serving.Gateway;

/// <summary>
/// Something a <see cref="SpliceRelayLoop"/> has registered with its epoll: a relayed pair, or a one-shot wait for a
/// socket's readiness. The loop calls every member but <see cref="Abort"/> on its own thread.
/// </summary>
internal abstract class RelayEntry(SpliceRelayLoop loop)
{
    /// <summary>The loop's slot for the entry while it is registered; -1 before and after.</summary>
    internal int Slot { get; set; } = -1;

    /// <summary>Asks the loop to end the entry; an entry already over is left alone. Safe from any thread.</summary>
    public void Abort() => loop.RequestAbort(this);

    /// <summary>Adds the entry's descriptors to <paramref name="epoll"/>; false when epoll refuses (the loop then releases it).</summary>
    internal abstract bool Register(int epoll);

    /// <summary>Handles readiness of one of the entry's descriptors; false when the entry is over and must be released.</summary>
    internal abstract bool OnEvent(int epoll, bool firstDescriptor, uint events);

    /// <summary>Deregisters (when <paramref name="registered"/>), lets go of every resource and completes the entry's task.</summary>
    internal abstract void Release(int epoll, bool registered);

    /// <summary>The epoll token: the slot, and which of the entry's (at most two) descriptors.</summary>
    protected ulong Token(bool firstDescriptor) => ((ulong)(uint)Slot << 1) | (firstDescriptor ? 0UL : 1UL);
}
