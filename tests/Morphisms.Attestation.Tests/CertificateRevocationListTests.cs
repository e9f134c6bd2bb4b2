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
}
