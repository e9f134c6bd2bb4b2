using System.Net;
using Morphisms.Serving.Activation;
using Morphisms.Serving.Runtime;

namespace Morphisms.Serving.Hosting;

/// <summary>Everything a <see cref="ServingHost"/> needs; <c>morph up</c> and tests build one of these.</summary>
public sealed record ServingHostOptions
{
    /// <summary>Confidential (SNI passthrough, TLS ends in the TEE) or HTTP (development, not confidential).</summary>
    public GatewayMode Mode { get; init; } = GatewayMode.Confidential;

    /// <summary>Functions are served at <c>NAME.DOMAIN</c>; the KMS's function certificates use the same domain.</summary>
    public string Domain { get; init; } = "fn.morphisms.local";

    /// <summary>Where instances keep launch configurations and secret directories.</summary>
    public required string DataDirectory { get; init; }

    /// <summary>The gateway's address (port 0 picks one).</summary>
    public IPEndPoint GatewayListen { get; init; } = new(IPAddress.Loopback, 0);

    /// <summary>
    /// HTTP mode only: serve HTTPS at the gateway with this certificate, as a non-confidential deployment's ingress
    /// would (see <see cref="Gateway.HttpGatewayOptions.Certificate"/>); null serves plain HTTP.
    /// </summary>
    public System.Security.Cryptography.X509Certificates.X509Certificate2? HttpGatewayCertificate { get; init; }

    /// <summary>The control API's address: loopback only (port 0 picks one).</summary>
    public IPEndPoint ControlListen { get; init; } = new(IPAddress.Loopback, 0);

    /// <summary>The KMS (needed for confidential functions).</summary>
    public KmsConnection? Kms { get; init; }

    /// <summary>The simulated TEE's state directory (<c>tee: sim</c>).</summary>
    public string? SimulatedTeeDirectory { get; init; }

    /// <summary>The runtime's settings beyond the ones this host fills in (KMS, data directory, report URL).</summary>
    public RuntimeOptions? Runtime { get; init; }

    /// <summary>Replaces the process runtime (tests).</summary>
    public IInstanceLauncher? Launcher { get; init; }

    /// <summary>Instance readiness, drain and restart timing.</summary>
    public SupervisorOptions Supervisor { get; init; } = new();

    /// <summary>How the activator holds requests.</summary>
    public ActivatorOptions Activator { get; init; } = new();

    /// <summary>Where the state file for the CLI is written; null writes none.</summary>
    public string? StateFile { get; init; }

    /// <summary>
    /// Where the control API's bearer token is written at start (mode 0600, replaced atomically; removed at stop), for
    /// the CLI and other local clients of this user. Null keeps it in memory only (<see cref="ServingHost.ControlToken"/>,
    /// for in-process callers). Either way every control route needs it, and sandboxed instances never see the file.
    /// </summary>
    public string? ControlTokenFile { get; init; }

    /// <summary>
    /// Where the metrics token is written at start (mode 0600, like <see cref="ControlTokenFile"/>): the token that opens
    /// <c>GET /metrics</c> and nothing else, for a Prometheus scraper, which then never holds the control token. Null
    /// writes none (<see cref="ServingHost.MetricsToken"/> still opens the route for in-process callers).
    /// </summary>
    public string? MetricsTokenFile { get; init; }

    /// <summary>The clock of the autoscaler loops and the runtime.</summary>
    public TimeProvider Time { get; init; } = TimeProvider.System;

    /// <summary>Where the host logs (one line per event); standard error by default.</summary>
    public TextWriter? Log { get; init; }
}

/// <summary>How the gateway handles traffic.</summary>
public enum GatewayMode
{
    /// <summary>SNI passthrough: the gateway never holds a key and never sees plaintext.</summary>
    Confidential,

    /// <summary>Plain HTTP through YARP to the apps' plain ports: development only, not confidential.</summary>
    Http,
}
