using System.Security.Cryptography;

namespace Morphisms.Attestation.Verify.Dcap;

/// <summary>
/// ECDSA P-256 with the raw encodings DCAP uses (public key x ‖ y, signature r ‖ s). Imported keys
/// are cached: importing a key costs about as much as a verification, and a platform's attestation
/// key stays the same across many quotes.
/// </summary>
internal static class EcdsaP256
{
    private static readonly BoundedCache<DigestKey, ECDsa?> Keys = new(1024);

    /// <summary>Verifies <paramref name="signature"/> (r ‖ s) over SHA-256 of <paramref name="data"/> with a raw x ‖ y key.</summary>
    public static bool Verify(ReadOnlySpan<byte> publicKey, ReadOnlySpan<byte> data, ReadOnlySpan<byte> signature)
    {
        if (publicKey.Length != 64)
        {
            return false;
        }

        var id = DigestKey.Of(publicKey);
        if (!Keys.TryGet(id, out var key))
        {
            key = Import(publicKey.ToArray());
            Keys.Set(id, key);
        }

        return key is not null && Verify(key, data, signature);
    }

    /// <summary>Verifies with an already imported key.</summary>
    public static bool Verify(ECDsa key, ReadOnlySpan<byte> data, ReadOnlySpan<byte> signature)
    {
        if (signature.Length != 64)
        {
            return false;
        }

        // The BCL does not promise that one key object may be used from several threads at once.
        lock (key)
        {
            try
            {
                return key.VerifyData(data, signature, HashAlgorithmName.SHA256, DSASignatureFormat.IeeeP1363FixedFieldConcatenation);
            }
            catch (CryptographicException)
            {
                return false;
            }
        }
    }

    private static ECDsa? Import(byte[] xy)
    {
        try
        {
            return ECDsa.Create(new ECParameters
            {
                Curve = ECCurve.NamedCurves.nistP256,
                Q = new ECPoint { X = xy[..32], Y = xy[32..] },
            });
        }
        catch (CryptographicException)
        {
            // Not a point on P-256: no signature can verify, which the caller reports.
            return null;
        }
    }
}
