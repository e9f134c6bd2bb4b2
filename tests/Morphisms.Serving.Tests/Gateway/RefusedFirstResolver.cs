using System.Collections.Concurrent;
using System.Net;
using Morphisms.Serving.Gateway;

namespace Morphisms.Serving.Tests.Gateway;

/// <summary>
/// A resolver for the gateways' re-resolution after a refused connect: names <paramref name="first"/>, then, asked again
/// without what was refused, <paramref name="then"/> (and nothing once that was refused too), recording each refused set.
/// </summary>
internal sealed class RefusedFirstResolver(BackendTarget first, BackendTarget then) : IBackendResolver
{
    /// <summary>The endpoints each re-resolution was told were refused, in order.</summary>
    public ConcurrentQueue<IPEndPoint[]> Refused { get; } = new();

    public ValueTask<BackendTarget?> ResolveAsync(string serverName, CancellationToken cancellationToken) => ValueTask.FromResult<BackendTarget?>(first);

    public ValueTask<BackendTarget?> ResolveAsync(string serverName, IReadOnlyCollection<IPEndPoint> refused, CancellationToken cancellationToken)
    {
        Refused.Enqueue([.. refused]);
        return ValueTask.FromResult<BackendTarget?>(refused.Contains(then.Endpoint) ? null : then);
    }
}
