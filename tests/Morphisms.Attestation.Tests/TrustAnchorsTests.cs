using System.Formats.Asn1;
using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;
using Morphisms.Attestation.Verify;
using Morphisms.Attestation.Trust;

namespace Morphisms.Attestation.Tests;

public class TrustAnchorsTests
{
    [Theory]
    [InlineData("Milan", "69D063B45344D26A2E94E1F4210DE49EF555308287D4C174445C95639A540BCD")]
    [InlineData("Genoa", "4C6598D19C18719C5DFD4A7D335F674E5BFE1D8F800CEA2CF270C10D103DB2F1")]
    [InlineData("Turin", "1F084161A44BB6D93778A904877D4819CAFA5D05EF4193B2DED9DD9C73DD3F6A")]
    public void Embedded_ark_matches_amds_published_fingerprint(string product, string sha256)
    {
        var roots = TrustAnchors.Vendor.FindAmdProduct(product);
        Assert.NotNull(roots);
        Assert.Equal(sha256, Convert.ToHexString(SHA256.HashData(roots.Ark.RawData)));
        Assert.False(roots.Simulated);
    }

    [Fact]
    public void Embedded_intel_root_matches_published_fingerprint()
    {
        var root = Assert.Single(TrustAnchors.Vendor.Intel);
        Assert.Equal("44A0196B2B99F889B8E149E95B807A350E7424964399E885A7CBB8CCFAB674D3",
            Convert.ToHexString(SHA256.HashData(root.Certificate.RawData)));
    }

    [Fact]
    public void Vendor_anchors_never_include_a_simulated_root()
    {
        Assert.DoesNotContain(TrustAnchors.Vendor.Amd, r => r.Simulated);
        Assert.DoesNotContain(TrustAnchors.Vendor.Intel, r => r.Simulated);
    }
}

/// <summary>Every file of the vectors' roots/ directory agrees with what the library embeds and trusts.</summary>
public class VendorRootFilesTests
{
    [VectorTheory]
    [InlineData("milan")]
    [InlineData("genoa")]
    [InlineData("turin")]
    public void Amd_root_files_equal_the_embedded_anchors_and_chain_to_the_ark(string product)
    {
        var roots = TrustAnchors.Vendor.FindAmdProduct(product);
        Assert.NotNull(roots);
        Assert.Equal(roots.Ark.RawData, Load($"amd_ark_{product}.pem").RawData);
        Assert.Equal(roots.Ask.RawData, Load($"amd_ask_{product}.pem").RawData);
        Assert.Equal(roots.Asvk!.RawData, Load($"amd_asvk_{product}.pem").RawData);

        foreach (var kind in new[] { "vcek", "vlek" })
        {
            var chain = LoadAll($"amd_kds_cert_chain_{kind}_{product}.pem");
            Assert.Equal(2, chain.Count);
            var intermediate = kind == "vcek" ? roots.Ask : roots.Asvk!;
            Assert.Equal(intermediate.RawData, chain[0].RawData);
            Assert.Equal(roots.Ark.RawData, chain[1].RawData);
            Assert.True(X509Signature.Verify(
                TbsOf(chain[0]), SignatureOf(chain[0]), AlgorithmOf(chain[0]), roots.Ark), $"{kind} {product}: intermediate not signed by the ARK");
        }
    }

    [VectorTheory]
    [InlineData("intel_sgx_pck_platform_ca.der", "2033-05-21")]
    [InlineData("intel_sgx_pck_processor_ca.pem", "2033-05-21")]
    [InlineData("intel_sgx_tcb_signing_2018-2025.pem", "2025-05-21")]
    [InlineData("intel_sgx_tcb_signing_2025-2032.der", "2032-05-06")]
    public void Intel_intermediates_are_signed_by_the_embedded_root(string file, string notAfterDay)
    {
        var root = Assert.Single(TrustAnchors.Vendor.Intel).Certificate;
        var certificate = Load(file);
        Assert.Equal(root.SubjectName.RawData, certificate.IssuerName.RawData);
        Assert.True(X509Signature.Verify(TbsOf(certificate), SignatureOf(certificate), AlgorithmOf(certificate), root));
        Assert.Equal(notAfterDay, certificate.NotAfter.ToUniversalTime().ToString("yyyy-MM-dd", System.Globalization.CultureInfo.InvariantCulture));
    }

    [VectorFact]
    public void Intel_root_files_equal_the_embedded_root()
    {
        var root = Assert.Single(TrustAnchors.Vendor.Intel).Certificate;
        Assert.Equal(root.RawData, Load("intel_sgx_root_ca.der").RawData);
        Assert.Equal(root.RawData, Load("intel_sgx_root_ca.pem").RawData);
    }

    private static X509Certificate2 Load(string file) => LoadAll(file)[0];

    private static List<X509Certificate2> LoadAll(string file)
    {
        var bytes = TestVectors.Read("roots", file);
        if (file.EndsWith(".der", StringComparison.Ordinal))
        {
            return [X509CertificateLoader.LoadCertificate(bytes)];
        }

        var collection = new X509Certificate2Collection();
        collection.ImportFromPem(System.Text.Encoding.ASCII.GetString(bytes));
        return [.. collection];
    }

    // A certificate is SEQUENCE { tbsCertificate, signatureAlgorithm, signatureValue BIT STRING }.
    private static byte[] TbsOf(X509Certificate2 certificate) =>
        Parts(certificate).Tbs;

    private static byte[] SignatureOf(X509Certificate2 certificate) =>
        Parts(certificate).Signature;

    private static ReadOnlyMemory<byte> AlgorithmOf(X509Certificate2 certificate) =>
        Parts(certificate).Algorithm;

    private static (byte[] Tbs, ReadOnlyMemory<byte> Algorithm, byte[] Signature) Parts(X509Certificate2 certificate)
    {
        var reader = new AsnReader(certificate.RawData, AsnEncodingRules.DER).ReadSequence();
        var tbs = reader.ReadEncodedValue().ToArray();
        var algorithm = reader.ReadEncodedValue();
        var signature = reader.ReadBitString(out _);
        return (tbs, algorithm, signature);
    }
}
