using System.Security.Cryptography.X509Certificates;

namespace Morphisms.Attestation.Identity;

/// <summary>
/// The KMS PKI CA marker: a non-critical extension (value DER NULL) on the KMS's PKI root CA (the <c>root_ca</c> of
/// <c>sys/attestation</c>) and on every intermediate the KMS makes under it. That root signs function certificates and
/// <c>pki/</c> role leaves for any name a role allows, so it can never identify the KMS's TLS endpoint; the marker lets
/// <see cref="Trust.KmsPin"/> tell such a CA apart from the one that issued the KMS's TLS certificate and refuse it as a
/// pin. Roots created before the marker existed lack it (the intermediates made since carry it).
/// </summary>
public static class KmsPkiCaMarker
{
    /// <summary>
    /// The extension's OID: arc 1 under the Morphisms UUID arc (<see cref="AttestedIdentityExtension.Oid"/>, X.667),
    /// so no registration is needed.
    /// </summary>
    public const string Oid = AttestedIdentityExtension.Oid + ".1";

    /// <summary>The marker extension, non-critical (other relying parties ignore it).</summary>
    public static X509Extension ToExtension() => new(Oid, [0x05, 0x00], critical: false);

    /// <summary>Whether <paramref name="certificate"/> carries the marker.</summary>
    public static bool IsOn(X509Certificate2 certificate)
    {
        ArgumentNullException.ThrowIfNull(certificate);
        return certificate.Extensions[Oid] is not null;
    }
}
