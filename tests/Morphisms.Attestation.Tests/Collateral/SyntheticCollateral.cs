using System.Globalization;
using System.Text;
using Morphisms.Attestation.Collateral;

namespace Morphisms.Attestation.Tests.Collateral;

/// <summary>A platform TCB level for synthetic TCB info.</summary>
public sealed record SyntheticLevel(int[] Sgx, int PceSvn, string Status, int[]? Tdx = null, string[]? Advisories = null);

/// <summary>A module identity for synthetic TDX TCB info.</summary>
public sealed record SyntheticModule(string Id, (int IsvSvn, string Status)[] Levels);

/// <summary>
/// Builds Intel-shaped TCB info and QE identity JSON for cases no real vector covers (convergence,
/// Revoked, relaunch). Its output is never signed by Intel, so it only reaches the evaluator directly.
/// </summary>
public static class SyntheticCollateral
{
    public const string Fmspc = "00906ED50000";
    public static readonly string ZeroSigner = new('0', 96);

    public static int[] Svns(params int[] head) => [.. head, .. new int[16 - head.Length]];

    public static byte[] TcbInfoJson(DateTimeOffset issued, string id, string status) =>
        TcbInfoJson(id, [new SyntheticLevel(Svns(1), 1, status, id == "TDX" ? Svns(1) : null)], issued);

    public static byte[] TcbInfoJson(string id, IEnumerable<SyntheticLevel> levels, DateTimeOffset? issued = null,
        IEnumerable<SyntheticModule>? modules = null, string moduleSigner = "")
    {
        var issue = issued ?? new DateTimeOffset(2025, 1, 1, 0, 0, 0, TimeSpan.Zero);
        var json = new StringBuilder();
        json.Append($"{{\"id\":\"{id}\",\"version\":3,\"issueDate\":\"{Iso(issue)}\",\"nextUpdate\":\"{Iso(issue.AddDays(30))}\",")
            .Append($"\"fmspc\":\"{Fmspc}\",\"pceId\":\"0000\",\"tcbType\":0,\"tcbEvaluationDataNumber\":17,");
        if (id == "TDX")
        {
            var signer = moduleSigner.Length > 0 ? moduleSigner : ZeroSigner;
            json.Append($"\"tdxModule\":{{\"mrsigner\":\"{signer}\",\"attributes\":\"0000000000000000\",\"attributesMask\":\"FFFFFFFFFFFFFFFF\"}},");
            if (modules is not null)
            {
                json.Append("\"tdxModuleIdentities\":[")
                    .Append(string.Join(",", modules.Select(m =>
                        $"{{\"id\":\"{m.Id}\",\"mrsigner\":\"{signer}\",\"attributes\":\"0000000000000000\",\"attributesMask\":\"FFFFFFFFFFFFFFFF\",\"tcbLevels\":["
                        + string.Join(",", m.Levels.Select(l => $"{{\"tcb\":{{\"isvsvn\":{l.IsvSvn}}},\"tcbDate\":\"2024-03-13T00:00:00Z\",\"tcbStatus\":\"{l.Status}\"}}"))
                        + "]}")))
                    .Append("],");
            }
        }

        json.Append("\"tcbLevels\":[").Append(string.Join(",", levels.Select(Level))).Append("]}");
        return Encoding.UTF8.GetBytes(json.ToString());
    }

    public static byte[] QeIdentityJson(string id, string mrSigner, int isvProdId, params (int IsvSvn, string Status, string[] Advisories)[] levels) =>
        Encoding.UTF8.GetBytes(
            $"{{\"id\":\"{id}\",\"version\":2,\"issueDate\":\"2025-01-01T00:00:00Z\",\"nextUpdate\":\"2025-01-31T00:00:00Z\",\"tcbEvaluationDataNumber\":17,"
            + "\"miscselect\":\"00000000\",\"miscselectMask\":\"FFFFFFFF\",\"attributes\":\"11000000000000000000000000000000\","
            + $"\"attributesMask\":\"FBFFFFFFFFFFFFFF0000000000000000\",\"mrsigner\":\"{mrSigner}\",\"isvprodid\":{isvProdId},\"tcbLevels\":["
            + string.Join(",", levels.Select(l => $"{{\"tcb\":{{\"isvsvn\":{l.IsvSvn}}},\"tcbDate\":\"2024-03-13T00:00:00Z\",\"tcbStatus\":\"{l.Status}\""
                + (l.Advisories.Length > 0 ? $",\"advisoryIDs\":[{string.Join(",", l.Advisories.Select(a => $"\"{a}\""))}]" : "") + "}"))
            + "]}");

    private static string Level(SyntheticLevel level)
    {
        var sgx = string.Join(",", level.Sgx.Select(s => $"{{\"svn\":{s}}}"));
        var tdx = level.Tdx is null ? "" : $",\"tdxtcbcomponents\":[{string.Join(",", level.Tdx.Select(s => $"{{\"svn\":{s}}}"))}]";
        var advisories = level.Advisories is null ? "" : $",\"advisoryIDs\":[{string.Join(",", level.Advisories.Select(a => $"\"{a}\""))}]";
        return $"{{\"tcb\":{{\"sgxtcbcomponents\":[{sgx}],\"pcesvn\":{level.PceSvn}{tdx}}},\"tcbDate\":\"2024-03-13T00:00:00Z\",\"tcbStatus\":\"{level.Status}\"{advisories}}}";
    }

    private static string Iso(DateTimeOffset time) => time.UtcDateTime.ToString("yyyy-MM-dd'T'HH:mm:ss'Z'", CultureInfo.InvariantCulture);

    /// <summary>Parses synthetic JSON into the verified form the evaluator takes.</summary>
    public static VerifiedCollateral Verified(TeeType tee, byte[] tcbInfo, byte[]? qeIdentity) => new()
    {
        Tee = tee,
        TcbInfo = Morphisms.Attestation.Collateral.TcbInfo.Parse(tcbInfo),
        QeIdentity = qeIdentity is null ? null : EnclaveIdentity.Parse(qeIdentity),
    };
}
