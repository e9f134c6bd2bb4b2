using System.Net;

namespace Morphisms.Serving.Gateway;

/// <summary>Settings of the confidential-mode gateway.</summary>
public sealed record SniGatewayOptions
{
    /// <summary>Where to listen (port 0 picks a free one).</summary>
    public IPEndPoint Listen { get; init; } = new(IPAddress.Loopback, 0);

    /// <summary>How long a client has to send its ClientHello before it is dropped (slowloris guard).</summary>
    public TimeSpan ClientHelloTimeout { get; init; } = TimeSpan.FromSeconds(5);

    /// <summary>How long to wait for the backend: resolving (which may include a scale from zero) and connecting.</summary>
    public TimeSpan BackendTimeout { get; init; } = TimeSpan.FromSeconds(30);

    /// <summary>
    /// Connections served at once; further ones are refused so memory stays bounded. The gateway serves fewer when the
    /// process's descriptor limit would not hold this many (see <see cref="SniPassthroughGateway.MaxConnections"/>).
    /// </summary>
    public int MaxConnections { get; init; } = 4096;

    /// <summary>
    /// Moves the bytes of established connections with the epoll + splice(2) relay (Linux) instead of async copy
    /// loops; where the relay cannot run the gateway uses the copy loops regardless. False forces the copy loops.
    /// </summary>
    public bool UseSpliceRelay { get; init; } = true;

    /// <summary>Relay threads when <see cref="UseSpliceRelay"/>; 0 picks one per machine up to 3 cores, two from 4.</summary>
    public int SpliceRelayThreads { get; init; }

    /// <summary>The clock of <see cref="ClientHelloTimeout"/>, <see cref="BackendTimeout"/> and the pause before accepting again after a failed accept.</summary>
    public TimeProvider Time { get; init; } = TimeProvider.System;

    /// <summary>Where the gateway says that accepting fails (out of descriptors) or serves fewer connections than asked; null says nothing.</summary>
    public Action<string>? Log { get; init; }
}
