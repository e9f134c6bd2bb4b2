using System.Formats.Asn1;
using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;

namespace Morphisms.Attestation.Verify.Dcap;

/// <summary>
/// Checks that one certificate was signed by another. Done by hand rather than with
/// <see cref="X509Chain"/>: the chain builder consults system stores, fetches and its own clock,
/// while a DCAP verifier must decide with only the given anchors at the given evaluation time.
/// </summary>
internal static class CertificateSignature
{
    public static bool IsSignedBy(X509Certificate2 subject, X509Certificate2 issuer)
    {
        if (!subject.IssuerName.RawData.AsSpan().SequenceEqual(issuer.SubjectName.RawData))
        {
            return false;
        }

        try
        {
            var reader = new AsnReader(subject.RawData, AsnEncodingRules.DER);
            var certificate = reader.ReadSequence();
            var tbs = certificate.ReadEncodedValue();
            var algorithm = certificate.ReadEncodedValue();
            var signature = certificate.ReadBitString(out var unused);
            return unused == 0 && X509Signature.Verify(tbs.Span, signature, algorithm, issuer);
        }
        catch (AsnContentException)
        {
            return false;
        }
    }

    public static bool IsCertificateAuthority(X509Certificate2 certificate)
    {
        try
        {
            return certificate.Extensions.OfType<X509BasicConstraintsExtension>().FirstOrDefault() is { CertificateAuthority: true };
        }
        catch (CryptographicException)
        {
            // .NET decodes the extension only here; one that does not decode does not make its certificate a CA.
            return false;
        }
    }
}
