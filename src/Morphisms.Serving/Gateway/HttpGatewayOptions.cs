using System.Net;
using System.Security.Cryptography.X509Certificates;

namespace Morphisms.Serving.Gateway;

/// <summary>Settings of the development-only HTTP-mode gateway.</summary>
public sealed record HttpGatewayOptions
{
    /// <summary>Where to listen (port 0 picks a free one).</summary>
    public IPEndPoint Listen { get; init; } = new(IPAddress.Loopback, 0);

    /// <summary>How long to wait for an instance's response headers.</summary>
    public TimeSpan ActivityTimeout { get; init; } = TimeSpan.FromSeconds(100);

    /// <summary>
    /// Serve HTTPS with this certificate (and its private key) instead of plain HTTP: TLS then ends at the gateway, as at
    /// the ingress of an ordinary, non-confidential deployment — still not confidential, since the gateway and the
    /// host see the plaintext. Null (the default) serves plain HTTP.
    /// </summary>
    public X509Certificate2? Certificate { get; init; }

    /// <summary>Where the loud "not confidential" warning goes.</summary>
    public TextWriter? Warnings { get; init; }
}
