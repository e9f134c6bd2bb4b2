namespace Morphisms.Serving.Activation;

/// <summary>
/// Thrown when a request cannot be held: the revision's queue is full, the wait timed out, or the revision was
/// stopped (its function removed, its traffic moved, the host stopping) before an instance was ready.
/// HTTP mode answers 503 with Retry-After; confidential mode closes the connection.
/// </summary>
public sealed class ActivatorOverloadedException(string revision, string reason, TimeSpan retryAfter)
    : Exception($"revision {revision}: {reason}")
{
    /// <summary>The revision that could not take the request.</summary>
    public string Revision { get; } = revision;

    /// <summary>How long the client should wait before retrying.</summary>
    public TimeSpan RetryAfter { get; } = retryAfter;
}
