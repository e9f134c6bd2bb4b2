using System.Formats.Asn1;
using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;

namespace Morphisms.Attestation;

/// <summary>
/// Loads certificates that arrive with evidence or collateral. Loading parses a certificate's structure, but .NET
/// decodes its validity dates only when they are first read, so a date the sender garbled would otherwise throw
/// <see cref="CryptographicException"/> from deep inside a verifier (a 500 in the KMS) instead of being refused here,
/// where the bytes are parsed.
/// </summary>
internal static class UntrustedCertificate
{
    /// <summary>Loads one DER certificate and reads its validity.</summary>
    /// <exception cref="CryptographicException">The bytes are not a certificate, or its validity does not decode.</exception>
    public static X509Certificate2 Load(ReadOnlySpan<byte> der) => RequireReadable(X509CertificateLoader.LoadCertificate(der));

    /// <summary>Reads what loading left undecoded and returns <paramref name="certificate"/>.</summary>
    /// <exception cref="CryptographicException">
    /// Its validity (notBefore, notAfter) does not decode, or its outer structure is not DER: OpenSSL loads BER lengths,
    /// but the verifiers re-read the signed part (TBSCertificate) as DER, which X.509 requires.
    /// </exception>
    public static X509Certificate2 RequireReadable(X509Certificate2 certificate)
    {
        try
        {
            _ = certificate.NotBefore;
            _ = certificate.NotAfter;
        }
        catch (CryptographicException e)
        {
            throw new CryptographicException($"the validity (notBefore, notAfter) of {certificate.Subject} does not decode", e);
        }

        try
        {
            var outer = new AsnReader(certificate.RawDataMemory, AsnEncodingRules.DER);
            var parts = outer.ReadSequence();
            outer.ThrowIfNotEmpty();
            parts.ReadEncodedValue(); // tbsCertificate
            parts.ReadEncodedValue(); // signatureAlgorithm
            parts.ReadBitString(out _);
            parts.ThrowIfNotEmpty();
        }
        catch (AsnContentException e)
        {
            throw new CryptographicException($"the certificate {certificate.Subject} is not DER-encoded ({e.Message})", e);
        }

        return certificate;
    }
}
