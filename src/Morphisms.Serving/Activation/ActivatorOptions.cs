namespace Morphisms.Serving.Activation;

/// <summary>How the activator holds requests for a revision that has no ready instance.</summary>
public sealed record ActivatorOptions
{
    /// <summary>Requests held per revision at most; more are refused at once so memory stays bounded.</summary>
    public int MaxQueuedPerRevision { get; init; } = 256;

    /// <summary>How long a held request waits for an instance before it is refused.</summary>
    public TimeSpan QueueTimeout { get; init; } = TimeSpan.FromSeconds(30);

    /// <summary>What to tell an HTTP client to wait before retrying after a refusal.</summary>
    public TimeSpan RetryAfter { get; init; } = TimeSpan.FromSeconds(1);
}
