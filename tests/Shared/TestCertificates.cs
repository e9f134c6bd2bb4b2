using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;

namespace Morphisms.Testing;

/// <summary>Throwaway P-256 certificate authorities for tests of chain and pin checks, and certificates no library can read the key of.</summary>
public static class TestCertificates
{
    /// <summary>
    /// A CA named <paramref name="name"/> with its private key: self-signed (valid a day either side of now) when
    /// <paramref name="issuer"/> is null, else issued by it (valid two hours either side) and naming its key.
    /// </summary>
    public static X509Certificate2 Ca(string name, X509Certificate2? issuer = null)
    {
        using var key = ECDsa.Create(ECCurve.NamedCurves.nistP256);
        var request = new CertificateRequest(name, key, HashAlgorithmName.SHA256);
        request.CertificateExtensions.Add(new X509BasicConstraintsExtension(true, false, 0, true));
        request.CertificateExtensions.Add(new X509SubjectKeyIdentifierExtension(request.PublicKey, false));
        if (issuer is null)
        {
            return request.CreateSelfSigned(DateTimeOffset.UtcNow.AddDays(-1), DateTimeOffset.UtcNow.AddDays(1));
        }

        request.CertificateExtensions.Add(X509AuthorityKeyIdentifierExtension.CreateFromCertificate(issuer, true, false));
        using var issued = request.Create(issuer, DateTimeOffset.UtcNow.AddHours(-2), DateTimeOffset.UtcNow.AddHours(2), RandomNumberGenerator.GetBytes(8));
        return issued.CopyWithPrivateKey(key);
    }

    /// <summary>
    /// <paramref name="der"/> (a certificate or a CSR) with the namedCurve OID of its P-256 or P-384 key changed to an arc
    /// no crypto library knows (1.2.840.10045.3.1.127 or 1.3.132.0.127): the DER stays well-formed, the key cannot be imported.
    /// </summary>
    public static byte[] OnUnknownCurve(byte[] der)
    {
        byte[][] curves = [[0x06, 0x08, 0x2A, 0x86, 0x48, 0xCE, 0x3D, 0x03, 0x01, 0x07], [0x06, 0x05, 0x2B, 0x81, 0x04, 0x00, 0x22]];
        var patched = der.ToArray();
        foreach (var curve in curves)
        {
            var at = patched.AsSpan().IndexOf(curve);
            if (at >= 0)
            {
                patched[at + curve.Length - 1] = 0x7F;
                return patched;
            }
        }

        throw new ArgumentException("no P-256 or P-384 curve OID in the DER", nameof(der));
    }
}
