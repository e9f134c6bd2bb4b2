using System.Security.Cryptography.X509Certificates;
using System.Text;
using Morphisms.Attestation.Verify.Snp;

namespace Morphisms.Attestation.Tests.Snp;

/// <summary>
/// Loading the certificates that come with an SEV-SNP report. They arrive in a KMS login, so a PEM is bounded: a real
/// one carries the VCEK or VLEK, the ASK or ASVK and the ARK, and every block in it is parsed.
/// </summary>
public class SnpEndorsementsTests
{
    private static byte[] Pem(params X509Certificate2[] certificates) =>
        Encoding.ASCII.GetBytes(string.Join('\n', certificates.Select(c => c.ExportCertificatePem())) + "\n");

    private static X509Certificate2[] Repeat(X509Certificate2 certificate, int count) => [.. Enumerable.Repeat(certificate, count)];

    [Fact]
    public void A_pem_of_the_key_certificate_and_its_chain_is_split()
    {
        var fake = FakeAmd.Milan;

        var endorsements = SnpEndorsements.Load(Pem(fake.Ark, fake.Vcek, fake.Ask));

        Assert.Equal(fake.Vcek.RawData, endorsements.KeyCertificate.RawData);
        Assert.Equal([fake.Ark.RawData, fake.Ask.RawData], endorsements.Chain.Select(c => c.RawData));
    }

    [Fact]
    public void A_pem_of_up_to_the_limit_loads()
    {
        var fake = FakeAmd.Milan;
        var pem = Pem([fake.Vcek, .. Repeat(fake.Ask, SnpEndorsements.MaxCertificates - 1)]);

        var endorsements = SnpEndorsements.Load(pem, Pem(Repeat(fake.Ark, SnpEndorsements.MaxCertificates)));

        Assert.Equal(fake.Vcek.RawData, endorsements.KeyCertificate.RawData);
        Assert.Equal((2 * SnpEndorsements.MaxCertificates) - 1, endorsements.Chain.Count);
    }

    [Fact]
    public void A_pem_of_more_certificates_than_a_chain_has_is_refused_naming_the_count()
    {
        var fake = FakeAmd.Milan;
        var many = Pem([fake.Vcek, .. Repeat(fake.Ask, SnpEndorsements.MaxCertificates)]);

        var key = Assert.Throws<EvidenceFormatException>(() => SnpEndorsements.Load(many));
        Assert.Equal("vcek", key.Field);
        Assert.Contains($"more than {SnpEndorsements.MaxCertificates} certificates", key.Message, StringComparison.Ordinal);

        var chain = Assert.Throws<EvidenceFormatException>(() => SnpEndorsements.Load(fake.Vcek.RawData, Pem(Repeat(fake.Ark, 1000))));
        Assert.Equal("cert_chain", chain.Field);
        Assert.Contains($"more than {SnpEndorsements.MaxCertificates} certificates", chain.Message, StringComparison.Ordinal);
    }
}
