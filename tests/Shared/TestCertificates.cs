using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;

namespace Morphisms.Testing;

/// <summary>Throwaway P-256 certificate authorities for tests of chain and pin checks.</summary>
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
}
