using Microsoft.Extensions.Hosting;

namespace Morphisms.Kms;

/// <summary>
/// A host lifetime that leaves process signals alone. The default console lifetime takes SIGINT/SIGTERM for itself
/// and stops Kestrel behind the embedding program's back, which then waits forever; the KMS is embedded (the CLI,
/// <c>morph up</c>, tests), so whoever owns the process decides when to dispose it.
/// </summary>
internal sealed class EmbeddedHostLifetime : IHostLifetime
{
    /// <inheritdoc />
    public Task WaitForStartAsync(CancellationToken cancellationToken) => Task.CompletedTask;

    /// <inheritdoc />
    public Task StopAsync(CancellationToken cancellationToken) => Task.CompletedTask;
}
