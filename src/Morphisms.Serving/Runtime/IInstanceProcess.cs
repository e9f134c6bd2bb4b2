using System.Net;

namespace Morphisms.Serving.Runtime;

/// <summary>One running instance of a revision, as the supervisor sees it.</summary>
public interface IInstanceProcess : IAsyncDisposable
{
    /// <summary>The instance's id (unique in this host).</summary>
    string Id { get; }

    /// <summary>Where the agent terminates TLS (inside the TEE); null for <c>tee: none</c>.</summary>
    IPEndPoint? TlsEndpoint { get; }

    /// <summary>The app's plain-HTTP port on loopback (HTTP mode proxies here; not confidential).</summary>
    IPEndPoint AppEndpoint { get; }

    /// <summary>Completes when the instance serves; faults when it exits first.</summary>
    Task Ready { get; }

    /// <summary>Completes with the exit code when the instance's process ends.</summary>
    Task<int> Exited { get; }

    /// <summary>The cold-start phases reported when it became ready, or null.</summary>
    ColdStartPhases? ColdStart { get; }

    /// <summary>Captured output.</summary>
    LogRing Logs { get; }

    /// <summary>Graceful stop: SIGTERM, wait up to <paramref name="drain"/>, then SIGKILL.</summary>
    Task StopAsync(TimeSpan drain);
}

/// <summary>Cold-start phases of one instance, in milliseconds.</summary>
/// <param name="SpawnMs">From spawning the process to the agent's own clock starting (process and runtime start-up), plus the readiness probe.</param>
/// <param name="AttestationMs">Key generation, challenge, evidence, attest-login and the certificate (the agent's report).</param>
/// <param name="SecretsMs">Fetching and writing the secret bundle (the agent's report).</param>
/// <param name="AppReadyMs">From starting the app to its first HTTP answer (the agent's report).</param>
public sealed record ColdStartPhases(double SpawnMs, double AttestationMs, double SecretsMs, double AppReadyMs);
