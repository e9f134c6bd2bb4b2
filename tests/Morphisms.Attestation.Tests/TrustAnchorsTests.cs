using System.Security.Cryptography;
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
