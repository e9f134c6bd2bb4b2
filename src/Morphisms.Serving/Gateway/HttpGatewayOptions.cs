using System.Net;

namespace Morphisms.Serving.Gateway;

/// <summary>Settings of the development-only HTTP-mode gateway.</summary>
public sealed record HttpGatewayOptions
{
    /// <summary>Where to listen (port 0 picks a free one).</summary>
    public IPEndPoint Listen { get; init; } = new(IPAddress.Loopback, 0);

    /// <summary>How long to wait for an instance's response headers.</summary>
    public TimeSpan ActivityTimeout { get; init; } = TimeSpan.FromSeconds(100);

    /// <summary>Where the loud "not confidential" warning goes.</summary>
    public TextWriter? Warnings { get; init; }
}
