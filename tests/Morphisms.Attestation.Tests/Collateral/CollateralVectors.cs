using System.Globalization;
using Morphisms.Attestation.Collateral;

namespace Morphisms.Attestation.Tests.Collateral;

/// <summary>
/// One consistent set of Intel collateral from the test vectors, with the evaluation time the
/// vectors README gives for it. Sets built from separate files name them; bundle sets name the file.
/// </summary>
public sealed record CollateralSet(
    string Name, TeeType Tee, string Time, PckCaType Ca,
    string? Bundle = null, string? TcbInfo = null, string? QeIdentity = null, string? PckCrl = null, string? RootCrl = null)
{
    /// <summary>The evaluation time.</summary>
    public DateTimeOffset At => DateTimeOffset.Parse(Time, CultureInfo.InvariantCulture, DateTimeStyles.AssumeUniversal);

    /// <summary>Items this set does not have (the README says no file of that date exists).</summary>
    public IReadOnlyList<string> Missing { get; init; } = [];

    /// <summary>Loads the collateral through the offline store, as a user's <c>--collateral</c> would.</summary>
    public DcapCollateral Load()
    {
        var store = Bundle is not null
            ? OfflineCollateralStore.Open(CollateralVectors.Path(Bundle))
            : OfflineCollateralStore.FromFiles(new CollateralFiles
            {
                TcbInfo = TcbInfo is null ? null : CollateralVectors.Path(TcbInfo),
                QeIdentity = QeIdentity is null ? null : CollateralVectors.Path(QeIdentity),
                PckCrl = PckCrl is null ? null : CollateralVectors.Path(PckCrl),
                RootCaCrl = RootCrl is null ? null : CollateralVectors.Path(RootCrl),
            });
        var request = new DcapCollateralRequest(Tee, "000000000000", Ca);
        return store.GetDcapCollateralAsync(request).AsTask().GetAwaiter().GetResult()!;
    }

    /// <inheritdoc />
    public override string ToString() => Name;
}

/// <summary>The collateral sets of testvectors/README.md ("collateral" and "time" columns).</summary>
public static class CollateralVectors
{
    /// <summary>"sgx/x.json" → full path under the vectors root.</summary>
    public static string Path(string relative) => TestVectors.Path(relative.Split('/'));

    public static readonly CollateralSet[] All =
    [
        new("sgx-rocketlake-dcaprs", TeeType.Sgx, "2024-08-29T20:20:00Z", PckCaType.Processor,
            Bundle: "sgx/dcaprs_rocketlake_00a067110000_full_collateral_20240826.json"),
        new("sgx-rocketlake-phala", TeeType.Sgx, "2025-07-01T00:00:00Z", PckCaType.Processor,
            Bundle: "sgx/phala_rocketlake_00a067110000_collateral_20250619.json"),
        new("sgx-icelake-dcaprs-v2", TeeType.Sgx, "2025-02-14T00:00:00Z", PckCaType.Platform,
            TcbInfo: "sgx/dcaprs_sgx_tcbinfo_v2_00606a000000_20250213.json", QeIdentity: "sgx/dcaprs_sgx_qe_identity_20250213.json",
            PckCrl: "sgx/dcaprs_pck_platform_crl_20250213.der", RootCrl: "sgx/dcaprs_root_ca_crl_20240320.der"),
        new("sgx-icelake-automata", TeeType.Sgx, "2025-08-15T05:45:00Z", PckCaType.Platform,
            TcbInfo: "sgx/automata_sgx_tcbinfo_v3_00606a000000_20250815.json", QeIdentity: "sgx/automata_sgx_qe_identity_20250815.json",
            PckCrl: "sgx/automata_pck_platform_crl_20250815.der", RootCrl: "sgx/automata_root_ca_crl_20250320.der"),
        new("tdx-spr-gotdxguest-2023", TeeType.Tdx, "2023-07-01T01:00:00Z", PckCaType.Platform,
            TcbInfo: "tdx/gotdxguest_tdx_tcbinfo_50806f000000_20230618.json", QeIdentity: "tdx/gotdxguest_td_qe_identity_20230608.json",
            PckCrl: "tdx/gotdxguest_pck_platform_crl_20230608.der", RootCrl: "tdx/gotdxguest_root_ca_crl_20230403.der"),
        new("tdx-emr-gotdxguest-2026", TeeType.Tdx, "2026-02-03T01:00:00Z", PckCaType.Platform,
            TcbInfo: "tdx/gotdxguest_tdx_tcbinfo_90c06f000000_20260201.json")
        { Missing = ["QE identity", "PCK CRL", "root CA CRL"] },
        new("tdx-spr-automata-2025-10", TeeType.Tdx, "2025-10-20T00:00:00Z", PckCaType.Platform,
            TcbInfo: "tdx/automata_tdx_tcbinfo_00806f050000_20251019.json", QeIdentity: "tdx/automata_td_qe_identity_20251013.json",
            PckCrl: "tdx/automata_pck_platform_crl_20251013.der", RootCrl: "sgx/automata_root_ca_crl_20250320.der"),
        new("tdx-spr-dcaprs-2024-09", TeeType.Tdx, "2024-09-10T06:49:54Z", PckCaType.Platform,
            TcbInfo: "tdx/dcaprs_tdx_tcbinfo_00806f050000_20240910.json", QeIdentity: "tdx/dcaprs_td_qe_identity_20240910.json",
            RootCrl: "sgx/dcaprs_root_ca_crl_20240320.der")
        { Missing = ["PCK CRL"] },
        new("tdx-spr-dcaprs-2025-02", TeeType.Tdx, "2025-02-14T00:00:00Z", PckCaType.Platform,
            TcbInfo: "tdx/dcaprs_tdx_tcbinfo_00806f050000_20250213.json", QeIdentity: "tdx/dcaprs_td_qe_identity_20250213.json",
            PckCrl: "sgx/dcaprs_pck_platform_crl_20250213.der", RootCrl: "sgx/dcaprs_root_ca_crl_20240320.der"),
        new("tdx-gnr-trustee-2025-10", TeeType.Tdx, "2025-10-28T12:00:00Z", PckCaType.Platform,
            TcbInfo: "tdx/trustee_tdx_tcbinfo_00a06d080000_20251027.json", QeIdentity: "tdx/trustee_td_qe_identity_20251028.json",
            PckCrl: "tdx/automata_pck_platform_crl_20251013.der", RootCrl: "sgx/automata_root_ca_crl_20250320.der"),
        new("tdx-emr-automata-2025-06", TeeType.Tdx, "2025-06-15T00:00:00Z", PckCaType.Platform,
            TcbInfo: "tdx/automata_tdx_tcbinfo_90c06f000000_20250605.json", QeIdentity: "tdx/automata_td_qe_identity_20250604.json",
            PckCrl: "tdx/automata_pck_platform_crl_20250604.der", RootCrl: "sgx/automata_root_ca_crl_20250320.der"),
        new("tdx-b0c06f-phala-2025-06", TeeType.Tdx, "2025-07-01T00:00:00Z", PckCaType.Platform,
            Bundle: "tdx/phala_b0c06f000000_collateral_20250619.json"),
        new("tdx-emr-phala-2026-02", TeeType.Tdx, "2026-03-01T00:00:00Z", PckCaType.Platform,
            Bundle: "tdx/phala_emr_90c06f000000_collateral_20260218.json"),
    ];

    public static CollateralSet Get(string name) => All.Single(s => s.Name == name);

    public static TheoryData<string> Names() => [.. All.Select(s => s.Name)];
}
