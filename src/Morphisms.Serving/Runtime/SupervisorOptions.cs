namespace Morphisms.Serving.Runtime;

/// <summary>How a revision's instances are kept: readiness, drain and crash-restart timing.</summary>
public sealed record SupervisorOptions
{
    /// <summary>Publish the instances' TLS ports (confidential mode) or their plain app ports (HTTP mode).</summary>
    public bool PublishTlsEndpoints { get; init; } = true;

    /// <summary>How long an instance may take to become ready before it is stopped and counted as a crash.</summary>
    public TimeSpan ReadyTimeout { get; init; } = TimeSpan.FromSeconds(60);

    /// <summary>
    /// How long a stopped instance may drain after SIGTERM before SIGKILL. Longer than morph-init's own drain (its app's
    /// 10 s, then 1 s for the connections still open, then the wipe of its secrets) with a margin: at the same 10 s the
    /// kill could cut the wipe short.
    /// </summary>
    public TimeSpan DrainTimeout { get; init; } = TimeSpan.FromSeconds(15);

    /// <summary>Delay before the first restart after a crash; it doubles per consecutive crash.</summary>
    public TimeSpan RestartBackoff { get; init; } = TimeSpan.FromMilliseconds(500);

    /// <summary>The longest restart delay.</summary>
    public TimeSpan MaxRestartBackoff { get; init; } = TimeSpan.FromSeconds(30);

    /// <summary>An instance that was ready this long before it crashed resets the backoff (it was healthy, not crash-looping).</summary>
    public TimeSpan BackoffReset { get; init; } = TimeSpan.FromSeconds(10);
}
