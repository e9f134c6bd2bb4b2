using System.Formats.Asn1;
using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;

namespace Morphisms.Attestation.Verify;

/// <summary>
/// Verifies an X.509-style signature (the one on a CRL or a certificate) given its DER
/// AlgorithmIdentifier. Covers what AMD and Intel use: ECDSA with SHA-256/384 and RSA PKCS#1 v1.5
/// or RSASSA-PSS with SHA-256/384.
/// </summary>
public static class X509Signature
{
    private const string EcdsaSha256 = "1.2.840.10045.4.3.2";
    private const string EcdsaSha384 = "1.2.840.10045.4.3.3";
    private const string RsaSha256 = "1.2.840.113549.1.1.11";
    private const string RsaSha384 = "1.2.840.113549.1.1.12";
    private const string RsaPss = "1.2.840.113549.1.1.10";
    private const string Mgf1 = "1.2.840.113549.1.1.8";

    /// <summary>
    /// Returns true when <paramref name="signature"/> (a BIT STRING's contents) over
    /// <paramref name="signedData"/> verifies with the issuer's key under the given algorithm.
    /// Unknown algorithms and malformed parameters return false rather than throwing.
    /// </summary>
    public static bool Verify(ReadOnlySpan<byte> signedData, ReadOnlySpan<byte> signature, ReadOnlyMemory<byte> algorithmIdentifier, X509Certificate2 issuer)
    {
        try
        {
            var reader = new AsnReader(algorithmIdentifier, AsnEncodingRules.DER);
            var seq = reader.ReadSequence();
            var oid = seq.ReadObjectIdentifier();
            switch (oid)
            {
                case EcdsaSha256:
                case EcdsaSha384:
                {
                    using var ecdsa = issuer.GetECDsaPublicKey();
                    if (ecdsa is null)
                    {
                        return false;
                    }

                    var hash = oid == EcdsaSha256 ? HashAlgorithmName.SHA256 : HashAlgorithmName.SHA384;
                    return ecdsa.VerifyData(signedData, signature, hash, DSASignatureFormat.Rfc3279DerSequence);
                }

                case RsaSha256:
                case RsaSha384:
                {
                    using var rsa = issuer.GetRSAPublicKey();
                    if (rsa is null)
                    {
                        return false;
                    }

                    var hash = oid == RsaSha256 ? HashAlgorithmName.SHA256 : HashAlgorithmName.SHA384;
                    return rsa.VerifyData(signedData, signature, hash, RSASignaturePadding.Pkcs1);
                }

                case RsaPss:
                {
                    using var rsa = issuer.GetRSAPublicKey();
                    if (rsa is null || !TryReadPssParameters(seq, out var hash, out var saltLength))
                    {
                        return false;
                    }

                    // .NET's PSS padding always uses a salt as long as the hash; AMD's chain does exactly that.
                    if (saltLength != HashLength(hash))
                    {
                        return false;
                    }

                    return rsa.VerifyData(signedData, signature, hash, RSASignaturePadding.Pss);
                }

                default:
                    return false;
            }
        }
        catch (Exception e) when (e is AsnContentException or CryptographicException)
        {
            return false;
        }
    }

    /// <summary>
    /// Reads RSASSA-PSS-params (RFC 4055). Every value comes from the certificate or CRL under
    /// verification, so nothing here may throw anything but <see cref="AsnContentException"/>:
    /// an out-of-range salt or a stray tag must read as "not a signature we verify".
    /// </summary>
    private static bool TryReadPssParameters(AsnReader algorithmSequence, out HashAlgorithmName hash, out int saltLength)
    {
        // RFC 4055 defaults are SHA-1, MGF1 with SHA-1, salt 20 and trailer 1; SHA-1 we do not accept.
        hash = HashAlgorithmName.SHA1;
        saltLength = 20;
        HashAlgorithmName? mgfHash = HashAlgorithmName.SHA1;
        if (!algorithmSequence.HasData)
        {
            return false;
        }

        var parameters = algorithmSequence.ReadSequence();
        algorithmSequence.ThrowIfNotEmpty();
        var previous = -1;
        while (parameters.HasData)
        {
            // A universal tag here would make ReadSequence(tag) throw ArgumentException, and DER wants
            // each explicitly tagged field at most once, in order.
            var tag = parameters.PeekTag();
            if (tag.TagClass != TagClass.ContextSpecific || tag.TagValue <= previous || tag.TagValue > 3)
            {
                return false;
            }

            previous = tag.TagValue;
            var field = parameters.ReadSequence(tag);
            switch (tag.TagValue)
            {
                case 0:
                    if (ReadHashAlgorithm(field.ReadSequence()) is not { } h)
                    {
                        return false;
                    }

                    hash = h;
                    break;
                case 1:
                    var mgf = field.ReadSequence();
                    if (mgf.ReadObjectIdentifier() != Mgf1)
                    {
                        return false;
                    }

                    mgfHash = ReadHashAlgorithm(mgf.ReadSequence());
                    mgf.ThrowIfNotEmpty();
                    break;
                case 2:
                    // INTEGER is unbounded: a salt of 2^40 must not become an OverflowException.
                    if (!field.TryReadInt32(out saltLength) || saltLength < 0)
                    {
                        return false;
                    }

                    break;
                case 3:
                    // trailerFieldBC (1) is the only trailer RFC 4055 defines, and the only one .NET verifies.
                    if (!field.TryReadInt32(out var trailer) || trailer != 1)
                    {
                        return false;
                    }

                    break;
            }

            field.ThrowIfNotEmpty();
        }

        // .NET's PSS padding uses MGF1 with the message hash; a different mask hash is a signature we cannot check.
        return hash != HashAlgorithmName.SHA1 && mgfHash == hash;
    }

    /// <summary>The hash an AlgorithmIdentifier names (parameters absent or NULL, RFC 4055 §2.1), or null if unsupported.</summary>
    private static HashAlgorithmName? ReadHashAlgorithm(AsnReader algorithm)
    {
        var oid = algorithm.ReadObjectIdentifier();
        if (algorithm.HasData)
        {
            algorithm.ReadNull();
        }

        algorithm.ThrowIfNotEmpty();
        return oid switch
        {
            "2.16.840.1.101.3.4.2.1" => HashAlgorithmName.SHA256,
            "2.16.840.1.101.3.4.2.2" => HashAlgorithmName.SHA384,
            "2.16.840.1.101.3.4.2.3" => HashAlgorithmName.SHA512,
            _ => null,
        };
    }

    private static int HashLength(HashAlgorithmName hash) =>
        hash == HashAlgorithmName.SHA256 ? 32 : hash == HashAlgorithmName.SHA384 ? 48 : 64;
}
