using Morphisms.Attestation.Abi.Snp;

namespace Morphisms.Attestation.Tests.Snp;

public class SnpAbiTypesTests
{
    [Fact]
    public void Tcb_parts_round_trip_in_both_layouts()
    {
        var legacy = TcbVersion.FromParts(3, 0, 8, 115);
        Assert.Equal(0x7308000000000003UL, legacy.Raw);
        Assert.Equal(TcbLayout.Legacy, legacy.Layout);
        Assert.Equal("bl=3 tee=0 snp=8 ucode=115", legacy.ToString());

        var turin = TcbVersion.FromParts(1, 2, 3, 4, fmc: 5);
        Assert.Equal(TcbLayout.Turin, turin.Layout);
        Assert.Equal(new byte[] { 5, 1, 2, 3, 0, 0, 0, 4 }, turin.ToBytes());
        Assert.Equal((byte?)5, turin.Fmc);
    }

    [Fact]
    public void Tcb_minimum_compares_every_component()
    {
        var tcb = TcbVersion.FromParts(3, 0, 8, 115);

        Assert.True(tcb.IsAtLeast(TcbVersion.FromParts(3, 0, 8, 115)));
        Assert.True(tcb.IsAtLeast(TcbVersion.FromParts(2, 0, 5, 68)));
        Assert.False(tcb.IsAtLeast(TcbVersion.FromParts(4, 0, 8, 115)));
        Assert.False(tcb.IsAtLeast(TcbVersion.FromParts(3, 1, 8, 115)));
        Assert.False(tcb.IsAtLeast(TcbVersion.FromParts(3, 0, 9, 115)));
        Assert.False(tcb.IsAtLeast(TcbVersion.FromParts(3, 0, 8, 116)));

        // A minimum written in the Turin layout applies by component name; the FMC only to Turin values.
        Assert.True(tcb.IsAtLeast(TcbVersion.FromParts(3, 0, 8, 115, fmc: 9)));
        Assert.False(TcbVersion.FromParts(3, 0, 8, 115, fmc: 1).IsAtLeast(TcbVersion.FromParts(3, 0, 8, 115, fmc: 2)));
    }

    [Fact]
    public void Guest_policy_bits_are_named()
    {
        var policy = new GuestPolicy(0x3F_1F02);

        Assert.Equal(2, policy.AbiMinor);
        Assert.Equal(0x1F, policy.AbiMajor);
        Assert.True(policy.SmtAllowed);
        Assert.True(policy.MigrationAgentAllowed);
        Assert.True(policy.DebugAllowed);
        Assert.True(policy.SingleSocketRequired);
        Assert.True(policy.CxlAllowed);
        Assert.False(policy.MemoryAes256XtsRequired);
        Assert.False(new GuestPolicy(0x30000).DebugAllowed);
    }

    [Fact]
    public void Signer_info_decodes_its_bits()
    {
        var info = new SnpSignerInfo(0b111);

        Assert.True(info.AuthorKeyEnabled);
        Assert.True(info.MaskChipKey);
        Assert.Equal(SnpSigningKey.Vlek, info.SigningKey);
        Assert.Equal(SnpSigningKey.None, new SnpSignerInfo(7 << 2).SigningKey);
    }

    [Theory]
    [InlineData(0x19, 0x01, "Milan")]
    [InlineData(0x19, 0x0F, "Milan")]
    [InlineData(0x19, 0x11, "Genoa")]
    [InlineData(0x19, 0xA0, "Genoa")]
    [InlineData(0x19, 0xAF, "Genoa")]
    [InlineData(0x1A, 0x02, "Turin")]
    [InlineData(0x1A, 0x11, "Turin")]
    [InlineData(0x19, 0x21, null)]
    [InlineData(0x17, 0x31, null)]
    [InlineData(0x00, 0x00, null)]
    public void Product_is_recognised_from_cpuid(byte family, byte model, string? product) =>
        Assert.Equal(product, SnpProducts.FromCpuid(new SnpCpuid(family, model, 0)));

    [Theory]
    [InlineData("Milan-B0", "Milan")]
    [InlineData("Milan", "Milan")]
    [InlineData("Genoa", "Genoa")]
    [InlineData("Turin-B0", "Turin")]
    [InlineData("Simulated", null)]
    [InlineData("", null)]
    public void Product_is_recognised_from_the_product_name(string name, string? product) =>
        Assert.Equal(product, SnpProducts.FromProductName(name));

    [Theory]
    [InlineData("SEV-Milan", "Milan")]
    [InlineData("SEV-VLEK-Milan", "Milan")]
    [InlineData("SEV-Genoa", "Genoa")]
    [InlineData("ARK-Milan", null)]
    public void Product_is_recognised_from_the_issuer(string commonName, string? product) =>
        Assert.Equal(product, SnpProducts.FromIssuerCommonName(commonName));

    [Fact]
    public void Firmware_versions_compare_and_parse()
    {
        Assert.True(new SnpFirmwareVersion(1, 55, 40).IsAtLeast(SnpFirmwareVersion.Parse("1.55.29")));
        Assert.False(new SnpFirmwareVersion(1, 52, 4).IsAtLeast(SnpFirmwareVersion.Parse("1.55.0")));
        Assert.True(new SnpFirmwareVersion(2, 0, 0).IsAtLeast(new SnpFirmwareVersion(1, 99, 99)));
        Assert.Throws<FormatException>(() => SnpFirmwareVersion.Parse("1.55"));
        Assert.Equal("1.55.40", new SnpFirmwareVersion(1, 55, 40).ToString());
    }
}
