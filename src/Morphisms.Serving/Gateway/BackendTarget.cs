using System.Net;

namespace Morphisms.Serving.Gateway;

/// <summary>Where a connection for a host name goes: an instance of a revision.</summary>
/// <param name="Revision">The revision the instance belongs to (for concurrency accounting).</param>
/// <param name="Endpoint">The instance's TLS port (its TLS terminator runs inside the TEE); in HTTP mode its plain port.</param>
/// <param name="Held">True when the request waited at the activator for an instance (a cold start, as the client saw it).</param>
public sealed record BackendTarget(string Revision, IPEndPoint Endpoint, bool Held = false);

/// <summary>
/// Picks the instance for a host name. An implementation may wait — that is where the activator
/// holds a connection while its revision scales from zero — and returns null for an unknown host.
/// </summary>
public interface IBackendResolver
{
    /// <summary>Resolves <paramref name="serverName"/> (lowercase SNI) to an instance, or null when no route matches.</summary>
    ValueTask<BackendTarget?> ResolveAsync(string serverName, CancellationToken cancellationToken);

    /// <summary>
    /// Resolves <paramref name="serverName"/> again after a connect to each of <paramref name="refused"/> was refused,
    /// before any byte reached it: an instance stopping (its agent stops accepting before it drains, so that the client
    /// can go elsewhere) or gone before the runtime noticed. An implementation that knows its instances picks another,
    /// or waits for one; this default asks again, and the gateway gives up if the answer is one already refused.
    /// </summary>
    ValueTask<BackendTarget?> ResolveAsync(string serverName, IReadOnlyCollection<IPEndPoint> refused, CancellationToken cancellationToken) =>
        ResolveAsync(serverName, cancellationToken);
}
