using System.Globalization;
using System.Text;
using System.Text.Json;
using Morphisms.Attestation;
using Morphisms.Attestation.Abi.Dcap;
using Morphisms.Attestation.Abi.Snp;

namespace Morphisms.Cli.Output;

/// <summary>
/// Lists every field of parsed claims in wire order, with snake_case names and lowercase hex for
/// bytes, so the JSON and the text dump show the same thing.
/// </summary>
public static class ClaimFields
{
    /// <summary>One field: a string (hex or text), a number or a boolean.</summary>
    public readonly record struct Field(string Name, object Value);

    /// <summary>The fields of <paramref name="claims"/>, in the order the format defines them.</summary>
    public static IReadOnlyList<Field> Of(EvidenceClaims claims) => claims switch
    {
        SnpClaims snp => Snp(snp),
        SgxClaims sgx => [.. Header(sgx), .. SgxBody(sgx.Report), .. Qe(sgx), .. Pck(sgx)],
        TdxClaims tdx => [.. Header(tdx), .. TdBody(tdx.Report), .. Qe(tdx), .. Pck(tdx)],
        _ => [new("measurement", Hex.Of(claims.Measurement)), new("report_data", Hex.Of(claims.ReportData))],
    };

    /// <summary>Writes the fields as properties of the JSON object being written.</summary>
    public static void WriteProperties(Utf8JsonWriter json, EvidenceClaims claims)
    {
        foreach (var field in Of(claims))
        {
            switch (field.Value)
            {
                case bool b: json.WriteBoolean(field.Name, b); break;
                case ulong u: json.WriteNumber(field.Name, u); break;
                case long l: json.WriteNumber(field.Name, l); break;
                case IConvertible n when n.GetTypeCode() is TypeCode.Byte or TypeCode.UInt16 or TypeCode.UInt32 or TypeCode.Int32:
                    json.WriteNumber(field.Name, n.ToInt64(CultureInfo.InvariantCulture));
                    break;
                default: json.WriteString(field.Name, field.Value.ToString()); break;
            }
        }
    }

    /// <summary>The fields as one JSON object.</summary>
    public static string ToJson(EvidenceClaims claims)
    {
        using var buffer = new MemoryStream();
        using (var json = new Utf8JsonWriter(buffer))
        {
            json.WriteStartObject();
            json.WriteString("tee", claims.Tee.ToWireName());
            json.WriteBoolean("simulated", claims.Simulated);
            WriteProperties(json, claims);
            json.WriteEndObject();
        }

        return Encoding.UTF8.GetString(buffer.ToArray());
    }

    /// <summary>The fields as aligned "name: value" lines.</summary>
    public static string ToText(EvidenceClaims claims)
    {
        var fields = Of(claims);
        var width = fields.Max(f => f.Name.Length) + 1;
        var text = new StringBuilder();
        foreach (var field in fields)
        {
            var value = field.Value switch
            {
                bool b => b ? "yes" : "no",
                _ => Convert.ToString(field.Value, CultureInfo.InvariantCulture) ?? string.Empty,
            };
            text.Append((field.Name + ":").PadRight(width + 1)).AppendLine(value);
        }

        return text.ToString();
    }

    private static List<Field> Snp(SnpClaims c) =>
    [
        new("version", c.Version),
        new("product", c.Product ?? "unknown"),
        new("guest_svn", c.GuestSvn),
        new("policy", c.Policy.ToString()),
        new("policy_debug_allowed", c.Policy.DebugAllowed),
        new("policy_smt_allowed", c.Policy.SmtAllowed),
        new("policy_migration_agent_allowed", c.Policy.MigrationAgentAllowed),
        new("family_id", Hex.Of(c.FamilyId)),
        new("image_id", Hex.Of(c.ImageId)),
        new("vmpl", c.Vmpl),
        new("current_tcb", c.CurrentTcb.ToString()),
        new("platform_info", c.PlatformInfo.ToString()),
        new("signing_key", c.SigningKey.ToString().ToLowerInvariant()),
        new("author_key_enabled", c.SignerInfo.AuthorKeyEnabled),
        new("mask_chip_key", c.SignerInfo.MaskChipKey),
        new("report_data", Hex.Of(c.ReportData)),
        new("measurement", Hex.Of(c.Measurement)),
        new("host_data", Hex.Of(c.HostData)),
        new("id_key_digest", Hex.Of(c.IdKeyDigest)),
        new("author_key_digest", Hex.Of(c.AuthorKeyDigest)),
        new("report_id", Hex.Of(c.ReportId)),
        new("report_id_ma", Hex.Of(c.ReportIdMa)),
        new("reported_tcb", c.ReportedTcb.ToString()),
        .. c.Cpuid is { } cpuid ? new List<Field> { new("cpuid", cpuid.ToString()) } : [],
        new("chip_id", Hex.Of(c.ChipId)),
        new("committed_tcb", c.CommittedTcb.ToString()),
        new("current_firmware", c.CurrentFirmware.ToString()),
        new("committed_firmware", c.CommittedFirmware.ToString()),
        new("launch_tcb", c.LaunchTcb.ToString()),
        .. c.LaunchMitigationVector is { } launch ? new List<Field> { new("launch_mit_vector", launch) } : [],
        .. c.CurrentMitigationVector is { } current ? new List<Field> { new("current_mit_vector", current) } : [],
    ];

    private static List<Field> Header(DcapClaims c) =>
    [
        new("quote_version", c.Header.Version),
        new("attestation_key_type", c.Header.AttestationKeyType),
        new("qe_svn", c.Header.QeSvn),
        new("pce_svn", c.Header.PceSvn),
        new("qe_vendor_id", Hex.Of(c.Header.QeVendorId)),
        new("user_data", Hex.Of(c.Header.UserData)),
    ];

    private static List<Field> SgxBody(SgxReportBody b) =>
    [
        new("cpusvn", Hex.Of(b.CpuSvn)),
        new("miscselect", b.MiscSelect),
        new("isv_ext_prod_id", Hex.Of(b.IsvExtProdId)),
        new("attributes", Hex.Of(b.Attributes)),
        new("debug", b.Debug),
        new("mrenclave", Hex.Of(b.MrEnclave)),
        new("mrsigner", Hex.Of(b.MrSigner)),
        new("config_id", Hex.Of(b.ConfigId)),
        new("isvprodid", b.IsvProdId),
        new("isvsvn", b.IsvSvn),
        new("config_svn", b.ConfigSvn),
        new("isv_family_id", Hex.Of(b.IsvFamilyId)),
        new("report_data", Hex.Of(b.ReportData)),
    ];

    private static List<Field> TdBody(TdReportBody b) =>
    [
        new("tee_tcb_svn", Hex.Of(b.TeeTcbSvn)),
        new("mrseam", Hex.Of(b.MrSeam)),
        new("mrsignerseam", Hex.Of(b.MrSignerSeam)),
        new("seam_attributes", Hex.Of(b.SeamAttributes)),
        new("td_attributes", Hex.Of(b.TdAttributes)),
        new("debug", b.Debug),
        new("xfam", Hex.Of(b.Xfam)),
        new("mrtd", Hex.Of(b.MrTd)),
        new("mrconfigid", Hex.Of(b.MrConfigId)),
        new("mrowner", Hex.Of(b.MrOwner)),
        new("mrownerconfig", Hex.Of(b.MrOwnerConfig)),
        new("rtmr0", Hex.Of(b.Rtmr0)),
        new("rtmr1", Hex.Of(b.Rtmr1)),
        new("rtmr2", Hex.Of(b.Rtmr2)),
        new("rtmr3", Hex.Of(b.Rtmr3)),
        new("report_data", Hex.Of(b.ReportData)),
        .. b.TeeTcbSvn2 is { } svn2 ? new List<Field> { new("tee_tcb_svn2", Hex.Of(svn2)) } : [],
        .. b.MrServiceTd is { } serviceTd ? new List<Field> { new("mrservicetd", Hex.Of(serviceTd)) } : [],
    ];

    private static List<Field> Qe(DcapClaims c) =>
    [
        new("qe_mrenclave", Hex.Of(c.QeReport.MrEnclave)),
        new("qe_mrsigner", Hex.Of(c.QeReport.MrSigner)),
        new("qe_isvprodid", c.QeReport.IsvProdId),
        new("qe_isvsvn", c.QeReport.IsvSvn),
    ];

    private static List<Field> Pck(DcapClaims c) => c.Pck is not { } pck ? [] :
    [
        new("fmspc", pck.FmspcHex),
        new("pce_id", Hex.Of(pck.PceId)),
        new("pck_pcesvn", pck.PceSvn),
        new("pck_cpusvn", Hex.Of(pck.CpuSvn)),
        new("pck_sgx_tcb_components", string.Join(",", pck.SgxTcbComponents.ToArray())),
        .. c.PckCa is { } ca ? new List<Field> { new("pck_ca", ca.ToString().ToLowerInvariant()) } : [],
    ];
}
