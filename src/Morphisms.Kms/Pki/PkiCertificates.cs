using System.Formats.Asn1;
using System.Net;
using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;
using System.Text;
using Morphisms.Kms.Http;

namespace Morphisms.Kms.Pki;

/// <summary>Certificate building blocks shared by CA set-up, role issuance and function certificates.</summary>
internal static class PkiCertificates
{
    /// <summary>OID of an EC public key (id-ecPublicKey); its parameters name the curve.</summary>
    public const string EcPublicKeyOid = "1.2.840.10045.2.1";

    /// <summary>OID of an RSA public key (rsaEncryption).</summary>
    public const string RsaPublicKeyOid = "1.2.840.113549.1.1.1";

    /// <summary>OID of the NIST P-224 curve (secp224r1).</summary>
    public const string P224CurveOid = "1.3.132.0.33";

    /// <summary>OID of the NIST P-256 curve (prime256v1).</summary>
    public const string P256CurveOid = "1.2.840.10045.3.1.7";

    /// <summary>OID of the NIST P-384 curve (secp384r1).</summary>
    public const string P384CurveOid = "1.3.132.0.34";

    /// <summary>OID of the NIST P-521 curve (secp521r1).</summary>
    public const string P521CurveOid = "1.3.132.0.35";

    /// <summary>
    /// The named curve of an EC public key, read from its parameters rather than by importing the key (an import
    /// re-validates the point, a scalar multiplication); null for explicit curve parameters or unreadable ones.
    /// </summary>
    public static string? NamedCurveOid(PublicKey key)
    {
        try
        {
            return key.EncodedParameters?.RawData is { } parameters ? new AsnReader(parameters, AsnEncodingRules.DER).ReadObjectIdentifier() : null;
        }
        catch (AsnContentException)
        {
            return null;
        }
    }

    /// <summary>Backdating of NotBefore, so a relying party whose clock is slightly behind accepts a fresh certificate.</summary>
    public static readonly TimeSpan Backdate = TimeSpan.FromSeconds(30);

    private static readonly System.Globalization.IdnMapping Idn = new();

    /// <summary>A random positive 16-byte serial with a non-zero top byte, so its DER encoding is exactly 16 bytes.</summary>
    public static byte[] NewSerial()
    {
        var serial = RandomNumberGenerator.GetBytes(16);
        serial[0] = (byte)((serial[0] & 0x7F) | 0x40);
        return serial;
    }

    /// <summary>Vault's serial format: lower-case hex pairs joined by colons.</summary>
    public static string FormatSerial(ReadOnlySpan<byte> serial) =>
        string.Join(':', Convert.ToHexStringLower(serial).Chunk(2).Select(c => new string(c)));

    /// <summary>Parses <c>aa:bb:…</c> or <c>aa-bb-…</c> or plain hex; null when it is not a serial.</summary>
    public static byte[]? ParseSerial(string text)
    {
        var hex = text.Replace(":", "", StringComparison.Ordinal).Replace("-", "", StringComparison.Ordinal);
        if (hex.Length is 0 or > 40 || hex.Length % 2 != 0 || !hex.All(char.IsAsciiHexDigit))
        {
            return null;
        }

        return Convert.FromHexString(hex);
    }

    /// <summary>The storage key of a certificate: its serial as plain lower-case hex.</summary>
    public static string SerialKey(ReadOnlySpan<byte> serial) => Convert.ToHexStringLower(serial);

    /// <summary>A new ECDSA CA key (P-256 or P-384).</summary>
    public static ECDsa NewCaKey(int bits) =>
        ECDsa.Create(bits == 256 ? ECCurve.NamedCurves.nistP256 : ECCurve.NamedCurves.nistP384);

    /// <summary>The subject for a CA with <paramref name="commonName"/>.</summary>
    public static X500DistinguishedName Subject(string commonName, string? organization = null)
    {
        var builder = new X500DistinguishedNameBuilder();
        if (organization is not null)
        {
            builder.AddOrganizationName(organization);
        }

        builder.AddCommonName(commonName);
        return builder.Build();
    }

    /// <summary>Adds the extensions of a CA certificate (path length 0 for intermediates: they only sign leaves).</summary>
    public static void AddCaExtensions(CertificateRequest request, X509Certificate2? issuer, bool root)
    {
        request.CertificateExtensions.Add(new X509BasicConstraintsExtension(true, !root, 0, true));
        request.CertificateExtensions.Add(new X509KeyUsageExtension(X509KeyUsageFlags.KeyCertSign | X509KeyUsageFlags.CrlSign | X509KeyUsageFlags.DigitalSignature, true));
        request.CertificateExtensions.Add(new X509SubjectKeyIdentifierExtension(request.PublicKey, false));
        if (issuer is not null)
        {
            request.CertificateExtensions.Add(X509AuthorityKeyIdentifierExtension.CreateFromCertificate(issuer, true, false));
        }
    }

    /// <summary>
    /// Throws a 400 naming <paramref name="field"/> and the first name a DNS SAN cannot carry: an empty label, a label
    /// over 63 characters, control characters and the like. <see cref="SubjectAlternativeNameBuilder.AddDnsName"/>
    /// maps each name through IDNA and throws on these; a role without <c>enforce_hostnames</c> checks only the
    /// suffix, so without this they reached it at signing time and were a 500.
    /// </summary>
    public static void CheckDnsNames(IEnumerable<string> names, string field)
    {
        foreach (var name in names)
        {
            try
            {
                // The mapping AddDnsName applies (default options).
                Idn.GetAscii(name);
            }
            catch (ArgumentException)
            {
                throw KmsException.BadRequest($"invalid '{field}': \"{PkiRole.Printable(name)}\" is not a valid DNS name");
            }
        }
    }

    /// <summary>Adds the extensions of an end-entity certificate.</summary>
    public static void AddLeafExtensions(CertificateRequest request, X509Certificate2 issuer, IReadOnlyList<string> dnsNames, IReadOnlyList<IPAddress> ips, bool server, bool client, bool rsa)
    {
        request.CertificateExtensions.Add(new X509BasicConstraintsExtension(false, false, 0, true));
        var usage = X509KeyUsageFlags.DigitalSignature | (rsa ? X509KeyUsageFlags.KeyEncipherment : X509KeyUsageFlags.KeyAgreement);
        request.CertificateExtensions.Add(new X509KeyUsageExtension(usage, true));
        var ekus = new OidCollection();
        if (server)
        {
            ekus.Add(new Oid("1.3.6.1.5.5.7.3.1"));
        }

        if (client)
        {
            ekus.Add(new Oid("1.3.6.1.5.5.7.3.2"));
        }

        if (ekus.Count > 0)
        {
            request.CertificateExtensions.Add(new X509EnhancedKeyUsageExtension(ekus, false));
        }

        request.CertificateExtensions.Add(new X509SubjectKeyIdentifierExtension(request.PublicKey, false));
        request.CertificateExtensions.Add(X509AuthorityKeyIdentifierExtension.CreateFromCertificate(issuer, true, false));
        if (dnsNames.Count + ips.Count > 0)
        {
            var san = new SubjectAlternativeNameBuilder();
            foreach (var name in dnsNames)
            {
                san.AddDnsName(name);
            }

            foreach (var ip in ips)
            {
                san.AddIpAddress(ip);
            }

            request.CertificateExtensions.Add(san.Build());
        }
    }

    /// <summary>
    /// Signs <paramref name="request"/> with <paramref name="issuer"/>, valid from <see cref="Backdate"/> before
    /// <paramref name="now"/> for <paramref name="lifetime"/>, clipped to the issuer's validity. An issuer that has
    /// expired is refused (a 400 naming it) rather than signing a certificate that is dead on arrival.
    /// </summary>
    public static X509Certificate2 Sign(CertificateRequest request, CaKey issuer, DateTimeOffset now, TimeSpan lifetime, byte[] serial)
    {
        var issuerNotAfter = new DateTimeOffset(issuer.Certificate.NotAfter.ToUniversalTime());
        var notAfter = now + lifetime;
        if (issuerNotAfter <= now)
        {
            throw KmsException.BadRequest(
                $"issuer '{issuer.Id}' expired at {issuerNotAfter.ToString("yyyy-MM-dd'T'HH:mm:ss'Z'", System.Globalization.CultureInfo.InvariantCulture)}: " +
                "make another issuer the mount's default (root/generate, intermediate/set-signed or intermediate/rotate)");
        }

        if (notAfter > issuerNotAfter)
        {
            notAfter = issuerNotAfter;
        }

        return request.Create(issuer.Certificate.SubjectName, issuer.Generator, now - Backdate, notAfter, serial);
    }

    /// <summary>PEM of a certificate.</summary>
    public static string Pem(X509Certificate2 certificate) => certificate.ExportCertificatePem();

    /// <summary>Splits a PEM bundle into its certificates; other blocks (keys) are skipped.</summary>
    public static List<X509Certificate2> ReadCertificates(string pem)
    {
        var list = new List<X509Certificate2>();

        // Bundles made by concatenating PEMs without a newline are common; RFC 7468 parsers reject them.
        var text = pem.Replace("----------BEGIN", "-----\n-----BEGIN", StringComparison.Ordinal).AsSpan();
        while (PemEncoding.TryFind(text, out var fields))
        {
            if (text[fields.Label].SequenceEqual("CERTIFICATE"))
            {
                list.Add(X509CertificateLoader.LoadCertificate(Convert.FromBase64String(text[fields.Base64Data].ToString())));
            }

            text = text[fields.Location.End.Value..];
        }

        return list;
    }

    /// <summary>PEM text of a DER blob with <paramref name="label"/>.</summary>
    public static string Pem(string label, byte[] der) => new string(PemEncoding.Write(label, der)) + "\n";

    /// <summary>A PEM bundle of several certificates.</summary>
    public static string Bundle(IEnumerable<string> pems)
    {
        var sb = new StringBuilder();
        foreach (var pem in pems)
        {
            sb.Append(pem.TrimEnd()).Append('\n');
        }

        return sb.ToString();
    }
}
