using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;
using System.Text;

namespace Morphisms.Attestation.Binding;

/// <summary>
/// The KMS's proof that it holds its root CA's private key, beside its self-attestation (<c>sys/attestation</c>,
/// <c>root_ca_proof</c>). The evidence binds the root CA certificate, but that certificate is public: any attested
/// server could bind a copy of another KMS's root beside its own TLS key. So the KMS also signs, with the root CA key,
/// <see cref="Statement"/>: the same nonce, TLS key and root the evidence binds. A client verifies it with the public
/// key of the root it is about to pin (<see cref="Verify"/>) and pins nothing that fails.
/// </summary>
/// <remarks>
/// The signature is ECDSA (the KMS's CA keys always are; its root is P-384) over SHA-384 of the statement, DER-encoded
/// (RFC 3279 Ecdsa-Sig-Value). The statement starts with the ASCII label, so it can never be read as the DER of a
/// certificate or CRL, the only other things the root key signs; the TLS key in it keeps a relay from reusing a
/// genuine KMS's proof: asked with the client's nonce, the genuine KMS signs its own TLS key, not the relay's.
/// </remarks>
public static class KmsRootCaProof
{
    /// <summary>Domain label the statement starts with.</summary>
    public const string Domain = "morphisms/kms/root-ca-proof/v1";

    /// <summary>How <c>sys/attestation</c> describes the proof to its readers (<c>root_ca_proof_binding</c>).</summary>
    public const string Description =
        "ECDSA-SHA384 (DER) by the root CA key over \"morphisms/kms/root-ca-proof/v1\" ‖ 0x00 ‖ len(nonce) (1 byte) ‖ nonce ‖ "
        + "SHA-256(TLS certificate SPKI) ‖ SHA-256(root CA certificate DER)";

    /// <summary>The digest signed over the statement.</summary>
    public static HashAlgorithmName Hash => HashAlgorithmName.SHA384;

    /// <summary>
    /// ASCII(<see cref="Domain"/>) ‖ 0x00 ‖ len(nonce) (one byte) ‖ nonce ‖ SHA-256(TLS certificate SPKI DER) ‖
    /// SHA-256(root CA certificate DER). The label ends at the 0x00 and the nonce carries its length, so no two
    /// inputs give the same bytes.
    /// </summary>
    /// <exception cref="ArgumentException">The nonce is empty or longer than 255 bytes.</exception>
    public static byte[] Statement(ReadOnlySpan<byte> nonce, ReadOnlySpan<byte> tlsSubjectPublicKeyInfo, ReadOnlySpan<byte> rootCaCertificate)
    {
        if (nonce.Length is 0 or > byte.MaxValue)
        {
            throw new ArgumentException($"a nonce of 1-{byte.MaxValue} bytes is required, not {nonce.Length}", nameof(nonce));
        }

        var label = Encoding.ASCII.GetBytes(Domain);
        var statement = new byte[label.Length + 2 + nonce.Length + 2 * SHA256.HashSizeInBytes];
        var rest = statement.AsSpan();
        label.CopyTo(rest);
        rest = rest[label.Length..];
        rest[0] = 0;
        rest[1] = (byte)nonce.Length;
        rest = rest[2..];
        nonce.CopyTo(rest);
        rest = rest[nonce.Length..];
        SHA256.HashData(tlsSubjectPublicKeyInfo, rest);
        SHA256.HashData(rootCaCertificate, rest[SHA256.HashSizeInBytes..]);
        return statement;
    }

    /// <summary>The KMS's side: signs <see cref="Statement"/> with its root CA key.</summary>
    public static byte[] Sign(ECDsa rootCaKey, ReadOnlySpan<byte> nonce, ReadOnlySpan<byte> tlsSubjectPublicKeyInfo, ReadOnlySpan<byte> rootCaCertificate)
    {
        ArgumentNullException.ThrowIfNull(rootCaKey);
        return rootCaKey.SignData(Statement(nonce, tlsSubjectPublicKeyInfo, rootCaCertificate), Hash, DSASignatureFormat.Rfc3279DerSequence);
    }

    /// <summary>
    /// The client's side: whether <paramref name="signature"/> is the root CA key's over the statement for this nonce,
    /// this TLS key and <paramref name="rootCa"/> itself. False for a root whose key is not ECDSA, and for a
    /// malformed signature.
    /// </summary>
    public static bool Verify(X509Certificate2 rootCa, ReadOnlySpan<byte> nonce, ReadOnlySpan<byte> tlsSubjectPublicKeyInfo, ReadOnlySpan<byte> signature)
    {
        ArgumentNullException.ThrowIfNull(rootCa);
        try
        {
            using var key = rootCa.GetECDsaPublicKey();
            return key is not null
                && key.VerifyData(Statement(nonce, tlsSubjectPublicKeyInfo, rootCa.RawData), signature, Hash, DSASignatureFormat.Rfc3279DerSequence);
        }
        catch (CryptographicException)
        {
            // A key on a curve this platform cannot import proves nothing either.
            return false;
        }
    }
}
