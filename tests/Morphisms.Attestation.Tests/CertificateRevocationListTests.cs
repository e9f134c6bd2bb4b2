using System.Formats.Asn1;
using System.Text;
using Morphisms.Attestation.Verify;

namespace Morphisms.Attestation.Tests;

/// <summary>A CRL comes with the evidence, so anything that is not one is an <see cref="EvidenceFormatException"/>.</summary>
public class CertificateRevocationListTests
{
    [Theory]
    [InlineData("-")]
    [InlineData("-----BEGIN X509 CRL-----")]
    [InlineData("-----BEGIN X509 CRL-----\n%%%%\n-----END X509 CRL-----\n")]
    [InlineData("-----BEGIN X509 CRL-----\nAAAA\n-----END X509 CRL-----\n")]
    [InlineData("-----BEGIN X509 CRL-----\nMAA=\n-----END X509 CRL-----\n")]
    public void Text_that_is_not_a_pem_crl_is_a_format_error_naming_the_crl(string text)
    {
        var e = Assert.Throws<EvidenceFormatException>(() => CertificateRevocationList.Parse(Encoding.ASCII.GetBytes(text)));

        Assert.Equal("crl", e.Field);
    }

    /// <summary>
    /// .NET decodes an X.500 name only when its text is first read, which for a CRL issuer is an error message of the
    /// verifier's, long after parsing: a CryptographicException there was a 500 at KMS login instead of a refusal.
    /// </summary>
    [Theory]
    [InlineData("020100")] // an INTEGER where the Name goes
    [InlineData("3003020100")] // a SEQUENCE holding an INTEGER where a SET of attributes goes
    public void An_issuer_that_is_not_a_name_is_a_format_error_at_parse(string issuerHex)
    {
        var e = Assert.Throws<EvidenceFormatException>(() => CertificateRevocationList.Parse(WithIssuer(Convert.FromHexString(issuerHex))));

        Assert.Equal("crl", e.Field);
        Assert.Contains("issuer", e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void A_well_formed_issuer_parses_and_reads()
    {
        var name = new System.Security.Cryptography.X509Certificates.X500DistinguishedName("CN=Intel SGX Root CA, O=Intel Corporation");

        var crl = CertificateRevocationList.Parse(WithIssuer(name.RawData));

        Assert.Equal(name.Name, crl.Issuer.Name);
    }

    /// <summary>An (unsigned) CRL whose tbsCertList has <paramref name="issuer"/> as its issuer, encoded as given.</summary>
    internal static byte[] WithIssuer(byte[] issuer)
    {
        var writer = new AsnWriter(AsnEncodingRules.DER);
        using (writer.PushSequence())
        {
            using (writer.PushSequence())
            {
                writer.WriteInteger(1);
                EcdsaWithSha256(writer);
                writer.WriteEncodedValue(issuer);
                writer.WriteUtcTime(new DateTimeOffset(2025, 1, 1, 0, 0, 0, TimeSpan.Zero));
                writer.WriteUtcTime(new DateTimeOffset(2025, 2, 1, 0, 0, 0, TimeSpan.Zero));
            }

            EcdsaWithSha256(writer);
            writer.WriteBitString(new byte[8]);
        }

        return writer.Encode();
    }

    private static void EcdsaWithSha256(AsnWriter writer)
    {
        using (writer.PushSequence())
        {
            writer.WriteObjectIdentifier("1.2.840.10045.4.3.2");
        }
    }
}
