using System.Net;
using Morphisms.Serving.Gateway;
using Morphisms.Serving.Routing;

namespace Morphisms.Serving.Activation;

/// <summary>
/// The activator, as the gateway's resolver: host → revision through the route table, then a ready
/// instance; when the revision has none (scaled to zero, or all starting), it pokes the autoscaler
/// and holds the request in a bounded queue until an instance is ready or the wait times out (on
/// <paramref name="time"/>, the system clock when not given).
/// </summary>
public sealed class ActivatingBackendResolver(RouteTable routes, RevisionInstances instances, IScaleFromZeroTrigger trigger, ActivatorOptions options, TimeProvider? time = null) : IBackendResolver
{
    private readonly TimeProvider _time = time ?? TimeProvider.System;

    /// <inheritdoc />
    /// <exception cref="ActivatorOverloadedException">The revision's queue is full, no instance became ready in time, or the revision stopped.</exception>
    public ValueTask<BackendTarget?> ResolveAsync(string serverName, CancellationToken cancellationToken) =>
        ResolveCoreAsync(serverName, null, cancellationToken);

    /// <inheritdoc />
    /// <remarks>
    /// Another ready instance when there is one; otherwise the request is held as for a revision with none ready, until
    /// an instance not refused is (the replacement of one that crashed, say).
    /// </remarks>
    /// <exception cref="ActivatorOverloadedException">The revision's queue is full, no instance became ready in time, or the revision stopped.</exception>
    public ValueTask<BackendTarget?> ResolveAsync(string serverName, IReadOnlyCollection<IPEndPoint> refused, CancellationToken cancellationToken) =>
        ResolveCoreAsync(serverName, refused, cancellationToken);

    private async ValueTask<BackendTarget?> ResolveCoreAsync(string serverName, IReadOnlyCollection<IPEndPoint>? refused, CancellationToken cancellationToken)
    {
        if (routes.Resolve(serverName) is not { } revision)
        {
            return null;
        }

        if (instances.TryPick(revision, refused) is { } ready)
        {
            return new BackendTarget(revision, ready);
        }

        trigger.Poke(revision, instances.Queued(revision) + 1);
        using var timeout = new CancellationTokenSource(options.QueueTimeout, _time);
        using var linked = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken, timeout.Token);
        try
        {
            var endpoint = await instances.WaitAsync(revision, options.MaxQueuedPerRevision, options.RetryAfter, linked.Token, refused).ConfigureAwait(false);
            return new BackendTarget(revision, endpoint, Held: true);
        }
        catch (OperationCanceledException) when (!cancellationToken.IsCancellationRequested)
        {
            throw new ActivatorOverloadedException(revision, $"no instance became ready within {options.QueueTimeout.TotalSeconds:0.#}s", options.RetryAfter);
        }
    }
}
