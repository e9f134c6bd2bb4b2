using System.Buffers.Binary;
using System.Security.Cryptography;
using System.Text.Json;
using Morphisms.Attestation.Abi.Snp;
using Morphisms.Attestation.Verify.Snp;

namespace Morphisms.Attestation.Tests.Snp;

/// <summary>The wrappers real SNP evidence travels in: trustee's JSON and Azure's HCL report.</summary>
public class SnpEvidenceFormatsTests
{
    [VectorFact]
    public void Trustee_json_evidence_rebuilds_to_the_binary_report_and_verifies()
    {
        using var json = JsonDocument.Parse(TestVectors.Read("snp", "trustee_genoa_e2e_evidence.json"));
        var rebuilt = FromTrusteeJson(json.RootElement.GetProperty("attestation_report"));
        var vcek = json.RootElement.GetProperty("cert_chain")[0];
        Assert.Equal("VCEK", vcek.GetProperty("cert_type").GetString());
        var vcekBytes = Bytes(vcek.GetProperty("data"));

        Assert.Equal(TestVectors.Read("snp", "trustee_genoa_v3_report_from_json.bin"), rebuilt);
        Assert.Equal(TestVectors.Read("snp", "trustee_genoa_vcek.der"), vcekBytes);

        var result = new SnpVerifier(SnpVectors.OptionsAt(SnpVectors.Gathered)).Verify(rebuilt, SnpEndorsements.Load(vcekBytes));
        Assert.True(result.Passed, string.Join("\n", result.Log.Failures));
        Assert.Equal(json.RootElement.GetProperty("attestation_report").GetProperty("cpuid_mod_id").GetByte(), result.Claims.Cpuid!.Value.Model);
    }

    [VectorTheory]
    [InlineData("trustee_azure_milan_hcl_report.bin", "trustee_azure_milan_v2_report.bin")]
    [InlineData("trustee_azure_genoa_hcl_report.bin", "trustee_azure_genoa_v3_report.bin")]
    public void Azure_hcl_report_binds_its_variable_data_into_report_data(string hclFile, string reportFile)
    {
        var hcl = TestVectors.Read("snp", hclFile);
        Assert.Equal("HCLA"u8.ToArray(), hcl[..4]);
        var embedded = hcl.AsSpan(32, SnpReport.Size);
        Assert.Equal(TestVectors.Read("snp", reportFile), embedded.ToArray());

        // Runtime data header after the report: data size, version, report type, hash type, variable data size.
        var variableSize = BinaryPrimitives.ReadInt32LittleEndian(hcl.AsSpan(1232));
        var variableData = hcl.AsSpan(1236, variableSize);
        Assert.StartsWith("{\"keys\":[", System.Text.Encoding.ASCII.GetString(variableData));

        var report = SnpReport.Parse(embedded);
        Assert.Equal(SHA256.HashData(variableData), report.ReportData[..32].ToArray());
        Assert.False(report.ReportData.Span[32..].ContainsAnyExcept((byte)0));
    }

    /// <summary>Writes trustee's serde form of a report in the ABI layout (only what this file uses).</summary>
    private static byte[] FromTrusteeJson(JsonElement r)
    {
        var b = SnpReportTests.MinimalReport(r.GetProperty("version").GetUInt32());
        var s = b.AsSpan();
        BinaryPrimitives.WriteUInt32LittleEndian(s[0x04..], r.GetProperty("guest_svn").GetUInt32());
        BinaryPrimitives.WriteUInt64LittleEndian(s[0x08..], r.GetProperty("policy").GetUInt64());
        Bytes(r.GetProperty("family_id")).CopyTo(s[0x10..]);
        Bytes(r.GetProperty("image_id")).CopyTo(s[0x20..]);
        BinaryPrimitives.WriteUInt32LittleEndian(s[0x30..], r.GetProperty("vmpl").GetUInt32());
        BinaryPrimitives.WriteUInt32LittleEndian(s[0x34..], r.GetProperty("sig_algo").GetUInt32());
        Tcb(r.GetProperty("current_tcb")).CopyTo(s[0x38..]);
        BinaryPrimitives.WriteUInt64LittleEndian(s[0x40..], r.GetProperty("plat_info").GetUInt64());
        BinaryPrimitives.WriteUInt32LittleEndian(s[0x48..], r.GetProperty("key_info").GetUInt32());
        Bytes(r.GetProperty("report_data")).CopyTo(s[0x50..]);
        Bytes(r.GetProperty("measurement")).CopyTo(s[0x90..]);
        Bytes(r.GetProperty("host_data")).CopyTo(s[0xC0..]);
        Bytes(r.GetProperty("id_key_digest")).CopyTo(s[0xE0..]);
        Bytes(r.GetProperty("author_key_digest")).CopyTo(s[0x110..]);
        Bytes(r.GetProperty("report_id")).CopyTo(s[0x140..]);
        Bytes(r.GetProperty("report_id_ma")).CopyTo(s[0x160..]);
        Tcb(r.GetProperty("reported_tcb")).CopyTo(s[0x180..]);
        s[0x188] = r.GetProperty("cpuid_fam_id").GetByte();
        s[0x189] = r.GetProperty("cpuid_mod_id").GetByte();
        s[0x18A] = r.GetProperty("cpuid_step").GetByte();
        Bytes(r.GetProperty("chip_id")).CopyTo(s[0x1A0..]);
        Tcb(r.GetProperty("committed_tcb")).CopyTo(s[0x1E0..]);
        Version(r.GetProperty("current")).CopyTo(s[0x1E8..]);
        Version(r.GetProperty("committed")).CopyTo(s[0x1EC..]);
        Tcb(r.GetProperty("launch_tcb")).CopyTo(s[0x1F0..]);
        Bytes(r.GetProperty("signature").GetProperty("r")).CopyTo(s[0x2A0..]);
        Bytes(r.GetProperty("signature").GetProperty("s")).CopyTo(s[0x2E8..]);
        return b;
    }

    private static byte[] Tcb(JsonElement tcb)
    {
        Assert.Equal(JsonValueKind.Null, tcb.GetProperty("fmc").ValueKind);
        return TcbVersion.FromParts(
            tcb.GetProperty("bootloader").GetByte(),
            tcb.GetProperty("tee").GetByte(),
            tcb.GetProperty("snp").GetByte(),
            tcb.GetProperty("microcode").GetByte()).ToBytes();
    }

    private static byte[] Version(JsonElement v) =>
        [v.GetProperty("build").GetByte(), v.GetProperty("minor").GetByte(), v.GetProperty("major").GetByte(), 0];

    private static byte[] Bytes(JsonElement array) => array.EnumerateArray().Select(e => e.GetByte()).ToArray();
}
