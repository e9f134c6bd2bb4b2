using System.Security.Cryptography;
using NSec.Cryptography;

namespace Morphisms.Kms.Transit;

/// <summary>Signing and verification for the asymmetric transit key types (Ed25519 through NSec/libsodium).</summary>
internal static class TransitSigning
{
    private static readonly SignatureAlgorithm Ed25519 = SignatureAlgorithm.Ed25519;

    /// <summary>A new Ed25519 key pair (raw private seed, raw public key).</summary>
    public static (byte[] Private, byte[] Public) NewEd25519()
    {
        using var key = NSec.Cryptography.Key.Create(Ed25519, new KeyCreationParameters { ExportPolicy = KeyExportPolicies.AllowPlaintextExport });
        return (key.Export(KeyBlobFormat.RawPrivateKey), key.PublicKey.Export(KeyBlobFormat.RawPublicKey));
    }

    /// <summary>Signs <paramref name="input"/> (ECDSA hashes it with <paramref name="hash"/>; Ed25519 signs it as is).</summary>
    public static byte[] Sign(string type, TransitKeyVersion version, byte[] input, HashAlgorithmName hash, bool jws)
    {
        if (type == "ed25519")
        {
            using var key = NSec.Cryptography.Key.Import(Ed25519, version.Key, KeyBlobFormat.RawPrivateKey);
            return Ed25519.Sign(key, input);
        }

        using var ec = ECDsa.Create();
        ec.ImportPkcs8PrivateKey(version.Key, out _);
        return ec.SignData(input, hash, jws ? DSASignatureFormat.IeeeP1363FixedFieldConcatenation : DSASignatureFormat.Rfc3279DerSequence);
    }

    /// <summary>Verifies <paramref name="signature"/> over <paramref name="input"/>; false for any mismatch or malformed signature.</summary>
    public static bool Verify(string type, TransitKeyVersion version, byte[] input, byte[] signature, HashAlgorithmName hash, bool jws)
    {
        if (type == "ed25519")
        {
            var key = NSec.Cryptography.PublicKey.Import(Ed25519, version.PublicKey, KeyBlobFormat.RawPublicKey);
            return Ed25519.Verify(key, input, signature);
        }

        using var ec = ECDsa.Create();
        ec.ImportSubjectPublicKeyInfo(version.PublicKey, out _);
        return ec.VerifyData(input, signature, hash, jws ? DSASignatureFormat.IeeeP1363FixedFieldConcatenation : DSASignatureFormat.Rfc3279DerSequence);
    }
}
