using System.Text;

namespace Morphisms.Serving.Hosting;

/// <summary>The KMS the serving host registers revisions with and points its agents at.</summary>
public sealed record KmsConnection
{
    /// <summary>The KMS base address (https).</summary>
    public required Uri Url { get; init; }

    /// <summary>
    /// Hex SHA-256 of the CA certificate that issued the KMS's TLS certificate (or of that certificate, when self-signed):
    /// the pin agents use (written into every measured launch configuration) and the host uses for its own calls (the
    /// presented chain must validate up to a certificate with this hash). Never the KMS PKI root (<c>root_ca_sha256</c>):
    /// it also signs <c>pki/</c> role certificates for any name a role allows, so <c>KmsPin</c> refuses it.
    /// </summary>
    public required string CaSha256 { get; init; }

    /// <summary>A token allowed to write ACL policies and the function registry (sudo on <c>morphisms/functions</c>).</summary>
    public required string Token { get; init; }

    // A record's ToString prints every property: the token stays out of log lines, exception messages and debugger
    // displays (ServingHostOptions prints this record too), and the rest stays there to debug with.
    private bool PrintMembers(StringBuilder builder)
    {
        builder.Append("Url = ").Append(Url).Append(", CaSha256 = ").Append(CaSha256).Append(", Token = [redacted]");
        return true;
    }
}
