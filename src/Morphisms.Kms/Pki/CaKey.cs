using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;

namespace Morphisms.Kms.Pki;

/// <summary>
/// A CA certificate with its private key, loaded from the barrier. Issuing keys are kept loaded in the mount's
/// <see cref="CaKeyPool"/> while the KMS is unsealed; other uses load one for an operation and dispose it.
/// </summary>
internal sealed class CaKey : IDisposable
{
    private CaKey(string id, X509Certificate2 certificate, ECDsa key)
    {
        Id = id;
        Certificate = certificate;
        Key = key;
        Generator = X509SignatureGenerator.CreateForECDsa(key);
        Hash = key.KeySize > 256 ? HashAlgorithmName.SHA384 : HashAlgorithmName.SHA256;
    }

    /// <summary>The issuer id.</summary>
    public string Id { get; }

    /// <summary>The CA certificate.</summary>
    public X509Certificate2 Certificate { get; }

    /// <summary>The CA's signing key (CA keys are always ECDSA).</summary>
    public ECDsa Key { get; }

    /// <summary>Signs certificates and CRLs.</summary>
    public X509SignatureGenerator Generator { get; }

    /// <summary>The digest matching the key size (SHA-384 for P-384, as the curve's strength asks).</summary>
    public HashAlgorithmName Hash { get; }

    /// <summary>Loads a CA from its PEM certificate and PKCS#8 PEM key.</summary>
    public static CaKey FromPem(string id, string certificatePem, string keyPem)
    {
        var key = ECDsa.Create();
        try
        {
            key.ImportFromPem(keyPem);
            return new CaKey(id, X509Certificate2.CreateFromPem(certificatePem), key);
        }
        catch
        {
            key.Dispose();
            throw;
        }
    }

    /// <inheritdoc />
    public void Dispose()
    {
        Certificate.Dispose();
        Key.Dispose();
    }
}
