using System.Buffers.Binary;
using Morphisms.Attestation.Abi.Snp;

namespace Morphisms.Attestation.Tests.Snp;

public class SnpReportTests
{
    [VectorFact]
    public void Gosevguest_milan_v2_fields_match_the_readme()
    {
        var report = SnpReport.Parse(SnpVectors.Report("gosevguest_milan_v2"));

        Assert.Equal(2u, report.Version);
        Assert.Equal(0xb0000UL, report.Policy.Raw);
        Assert.True(report.Policy.DebugAllowed);
        Assert.True(report.Policy.SmtAllowed);
        Assert.False(report.Policy.MigrationAgentAllowed);
        Assert.Equal(0u, report.Vmpl);
        Assert.Equal(SnpSigningKey.Vcek, report.SignerInfo.SigningKey);
        Assert.Equal(1UL, report.PlatformInfo.Raw);
        Assert.True(report.PlatformInfo.SmtEnabled);
        Assert.Null(report.Cpuid);
        Assert.Null(report.Product);
        Assert.Equal(TcbLayout.Legacy, report.Layout);
        Assert.Equal(new SnpFirmwareVersion(1, 49, 3), report.CurrentFirmware);
        Assert.Equal(0x4405000000000002UL, report.ReportedTcb.Raw);
        Assert.Equal((2, 0, 5, 68), (report.ReportedTcb.Bootloader, report.ReportedTcb.Tee, report.ReportedTcb.Snp, report.ReportedTcb.Microcode));
        Assert.Null(report.ReportedTcb.Fmc);
        Assert.Equal(report.ReportedTcb, report.CurrentTcb);
        Assert.Equal(report.ReportedTcb, report.CommittedTcb);
        Assert.Equal(report.ReportedTcb, report.LaunchTcb);
        Assert.Equal("b07af9620f3b839b47996422ddec6058338951d984e312115131ea82705eaf5b6bdf8a9ece31a5a608eb0cf2e4872b01", Hex.Of(report.Measurement));
        Assert.Equal("0102030405" + new string('0', 118), Hex.Of(report.ReportData));
        Assert.Equal(new string('0', 64), Hex.Of(report.HostData));
        Assert.Equal(new string('0', 96), Hex.Of(report.IdKeyDigest));
        Assert.Equal(0u, report.GuestSvn);
        Assert.Equal("3ac3fe21e13fb0990eb28a802e3fb6a29483a6b0753590c951bdd3b8e53786184ca39e359669a2b76a1936776b564ea464cdce40c05f63c9b610c5068b006b5d", Hex.Of(report.ChipId));
        Assert.Equal("8edc638e1857c555d21f6b11bda3c8b1b5a09dba4852b4c8ee7aa2f16f22cc0a", Hex.Of(report.ReportId));
        Assert.Equal(new string('f', 64), Hex.Of(report.ReportIdMa));
        Assert.Null(report.LaunchMitigationVector);
    }

    [VectorFact]
    public void Trustee_milan_v2_has_an_id_block_and_a_newer_current_microcode()
    {
        var report = SnpReport.Parse(SnpVectors.Report("trustee_milan_v2"));

        Assert.Equal(0x3001fUL, report.Policy.Raw);
        Assert.Equal(0x1f, report.Policy.AbiMinor);
        Assert.Equal(0, report.Policy.AbiMajor);
        Assert.False(report.Policy.DebugAllowed);
        Assert.Equal(4u, report.GuestSvn);
        Assert.Equal("01" + new string('0', 30), Hex.Of(report.FamilyId));
        Assert.Equal("02" + new string('0', 30), Hex.Of(report.ImageId));
        Assert.Equal("0356215882a825279a85b300b0b742931d113bf7e32dde2e50ffde7ec743ca491ecdd7f336dc28a6e0b2bb57af7a44a3", Hex.Of(report.IdKeyDigest));
        Assert.Equal(115, report.ReportedTcb.Microcode);
        Assert.Equal(206, report.CurrentTcb.Microcode);
        Assert.Equal(new SnpFirmwareVersion(1, 52, 4), report.CurrentFirmware);
    }

    [VectorFact]
    public void Vlek_v3_report_names_its_cpu_and_masks_the_chip()
    {
        var report = SnpReport.Parse(SnpVectors.Report("trustee_milan_vlek_v3"));

        Assert.Equal(3u, report.Version);
        Assert.Equal(SnpSigningKey.Vlek, report.SignerInfo.SigningKey);
        Assert.Equal(1u, report.Vmpl);
        Assert.Equal(new SnpCpuid(0x19, 0x01, 0x01), report.Cpuid);
        Assert.Equal(SnpProducts.Milan, report.Product);
        Assert.Equal(0x27UL, report.PlatformInfo.Raw);
        Assert.True(report.PlatformInfo.AliasCheckComplete);
        Assert.False(report.ChipId.Span.ContainsAnyExcept((byte)0));
        Assert.Equal((4, 24, 217), (report.ReportedTcb.Bootloader, report.ReportedTcb.Snp, report.ReportedTcb.Microcode));
        Assert.Equal(219, report.CommittedTcb.Microcode);
        Assert.Equal(219, report.LaunchTcb.Microcode);
        Assert.Equal(220, report.CurrentTcb.Microcode);
        Assert.Equal(new SnpFirmwareVersion(1, 55, 29), report.CurrentFirmware);
    }

    [VectorTheory]
    [InlineData("trustee_genoa_v3", 0x19, 0xA0, 2, 0x25UL, 0x191700000000000aUL)]
    [InlineData("trustee_azure_genoa_v3", 0x19, 0x11, 1, 0x24UL, 0x541700000000000aUL)]
    public void Genoa_v3_reports_are_recognised_from_cpuid(string name, byte family, byte model, byte stepping, ulong platformInfo, ulong reportedTcb)
    {
        var report = SnpReport.Parse(SnpVectors.Report(name));

        Assert.Equal(new SnpCpuid(family, model, stepping), report.Cpuid);
        Assert.Equal(SnpProducts.Genoa, report.Product);
        Assert.Equal(platformInfo, report.PlatformInfo.Raw);
        Assert.Equal(reportedTcb, report.ReportedTcb.Raw);
        Assert.Equal(new SnpFirmwareVersion(1, 55, 40), report.CurrentFirmware);
    }

    [VectorFact]
    public void Azure_genoa_report_carries_its_guest_svn_and_family_id()
    {
        var report = SnpReport.Parse(SnpVectors.Report("trustee_azure_genoa_v3"));

        Assert.Equal(65547u, report.GuestSvn);
        Assert.Equal("01232000000000000000000000000000", Hex.Of(report.FamilyId));
    }

    [VectorFact]
    public void Signature_converts_to_big_endian_p1363()
    {
        var report = SnpReport.Parse(SnpVectors.Report("trustee_genoa_v3"));
        var p1363 = report.SignatureP1363()!;

        // trustee_genoa_e2e_evidence.json: r starts f8 4a dd 09 … (little-endian), so big-endian ends … 09 dd 4a f8.
        Assert.Equal(96, p1363.Length);
        Assert.Equal(new byte[] { 0x09, 0xdd, 0x4a, 0xf8 }, p1363[44..48]);
        Assert.Equal(new byte[] { 0x0d, 0x43, 0xad, 0x07 }, p1363[92..96]);
    }

    [Theory]
    [InlineData(0)]
    [InlineData(1183)]
    [InlineData(1185)]
    [InlineData(2600)]
    public void Wrong_length_is_rejected_naming_the_length(int length)
    {
        var e = Assert.Throws<EvidenceFormatException>(() => SnpReport.Parse(new byte[length]));
        Assert.Equal("length", e.Field);
        Assert.Contains(length.ToString(), e.Message);
        Assert.Contains("1184", e.Message);
    }

    [VectorFact]
    public void Truncated_report_is_rejected()
    {
        var bytes = SnpVectors.Report("trustee_milan_v2");
        var e = Assert.Throws<EvidenceFormatException>(() => SnpReport.Parse(bytes.AsSpan(0, 0x2A0)));
        Assert.Equal("length", e.Field);
    }

    [VectorFact]
    public void Azure_hcl_blob_is_not_mistaken_for_a_report()
    {
        var e = Assert.Throws<EvidenceFormatException>(() => SnpReport.Parse(TestVectors.Read("snp", "trustee_azure_milan_hcl_report.bin")));
        Assert.Equal("length", e.Field);
    }

    [Theory]
    [InlineData(0u)]
    [InlineData(1u)]
    [InlineData(6u)]
    [InlineData(0x02000000u)]
    public void Unknown_version_is_rejected_naming_the_version(uint version)
    {
        var bytes = MinimalReport();
        BinaryPrimitives.WriteUInt32LittleEndian(bytes, version);

        var e = Assert.Throws<EvidenceFormatException>(() => SnpReport.Parse(bytes));
        Assert.Equal("version", e.Field);
        Assert.Contains(version.ToString(), e.Message);
    }

    [Theory]
    [InlineData(0u)]
    [InlineData(2u)]
    public void Signature_algorithm_other_than_ecdsa_p384_is_rejected(uint algorithm)
    {
        var bytes = MinimalReport();
        BinaryPrimitives.WriteUInt32LittleEndian(bytes.AsSpan(0x34), algorithm);

        Assert.Equal("signature_algo", Assert.Throws<EvidenceFormatException>(() => SnpReport.Parse(bytes)).Field);
    }

    [Fact]
    public void Policy_without_reserved_bit_17_is_rejected()
    {
        var bytes = MinimalReport();
        BinaryPrimitives.WriteUInt64LittleEndian(bytes.AsSpan(0x08), 0x10000);

        Assert.Equal("policy", Assert.Throws<EvidenceFormatException>(() => SnpReport.Parse(bytes)).Field);
    }

    [Fact]
    public void Policy_with_undefined_high_bits_is_rejected()
    {
        var bytes = MinimalReport();
        BinaryPrimitives.WriteUInt64LittleEndian(bytes.AsSpan(0x08), 0x30000 | (1UL << 40));

        Assert.Equal("policy", Assert.Throws<EvidenceFormatException>(() => SnpReport.Parse(bytes)).Field);
    }

    [Theory]
    [InlineData(2u << 2, "signing_key")]
    [InlineData(6u << 2, "signing_key")]
    [InlineData(1u << 5, "signer_info")]
    public void Reserved_signer_info_is_rejected(uint signerInfo, string field)
    {
        var bytes = MinimalReport();
        BinaryPrimitives.WriteUInt32LittleEndian(bytes.AsSpan(0x48), signerInfo);

        Assert.Equal(field, Assert.Throws<EvidenceFormatException>(() => SnpReport.Parse(bytes)).Field);
    }

    [Theory]
    [InlineData(2u, 0x04C)]
    [InlineData(2u, 0x188)]
    [InlineData(3u, 0x18B)]
    [InlineData(2u, 0x19F)]
    [InlineData(2u, 0x1EB)]
    [InlineData(2u, 0x1EF)]
    [InlineData(2u, 0x1F8)]
    [InlineData(3u, 0x200)]
    [InlineData(5u, 0x208)]
    [InlineData(2u, 0x29F)]
    [InlineData(2u, 0x2A0 + 144)]
    [InlineData(2u, 0x49F)]
    public void Non_zero_reserved_bytes_are_rejected_naming_the_field(uint version, int offset)
    {
        var bytes = MinimalReport(version);
        bytes[offset] = 1;

        var e = Assert.Throws<EvidenceFormatException>(() => SnpReport.Parse(bytes));
        Assert.StartsWith(offset >= 0x2A0 ? "signature" : "reserved", e.Field);
    }

    [Fact]
    public void Version_5_reads_the_mitigation_vectors()
    {
        var bytes = MinimalReport(5);
        BinaryPrimitives.WriteUInt64LittleEndian(bytes.AsSpan(0x1F8), 0x11);
        BinaryPrimitives.WriteUInt64LittleEndian(bytes.AsSpan(0x200), 0x13);

        var report = SnpReport.Parse(bytes);

        Assert.Equal(0x11UL, report.LaunchMitigationVector);
        Assert.Equal(0x13UL, report.CurrentMitigationVector);
    }

    [Fact]
    public void Turin_report_uses_the_turin_tcb_layout()
    {
        var bytes = MinimalReport(5);
        bytes[0x188] = 0x1A; // Zen 5
        bytes[0x189] = 0x02;
        byte[] tcb = [7, 1, 2, 3, 0, 0, 0, 9]; // fmc bl tee snp … ucode
        tcb.CopyTo(bytes, 0x180);

        var report = SnpReport.Parse(bytes);

        Assert.Equal(SnpProducts.Turin, report.Product);
        Assert.Equal(TcbLayout.Turin, report.Layout);
        Assert.Equal((byte?)7, report.ReportedTcb.Fmc);
        Assert.Equal((1, 2, 3, 9), (report.ReportedTcb.Bootloader, report.ReportedTcb.Tee, report.ReportedTcb.Snp, report.ReportedTcb.Microcode));
        Assert.Equal("fmc=7 bl=1 tee=2 snp=3 ucode=9", report.ReportedTcb.ToString());
    }

    [Fact]
    public void Turin_tcb_with_reserved_bytes_set_is_rejected()
    {
        var bytes = MinimalReport(3);
        bytes[0x188] = 0x1A;
        bytes[0x180 + 5] = 1;

        Assert.Equal("reported_tcb", Assert.Throws<EvidenceFormatException>(() => SnpReport.Parse(bytes)).Field);
    }

    [Fact]
    public void Signature_with_high_bytes_set_is_not_a_p384_signature()
    {
        var bytes = MinimalReport();
        bytes[0x2A0 + 60] = 1;

        Assert.Null(SnpReport.Parse(bytes).SignatureP1363());
    }

    /// <summary>The smallest report the parser accepts: everything zero but version, policy bit 17 and the algorithm.</summary>
    internal static byte[] MinimalReport(uint version = 2)
    {
        var bytes = new byte[SnpReport.Size];
        BinaryPrimitives.WriteUInt32LittleEndian(bytes, version);
        BinaryPrimitives.WriteUInt64LittleEndian(bytes.AsSpan(0x08), 0x30000);
        BinaryPrimitives.WriteUInt32LittleEndian(bytes.AsSpan(0x34), 1);
        return bytes;
    }
}
