using Morphisms.Attestation.Collateral;

namespace Morphisms.Attestation.Tests.Dcap;

/// <summary>
/// One row of the SGX/TDX tables of testvectors/README.md: a quote, the collateral that goes with
/// it, the evaluation time, and what Intel's algorithm yields.
/// </summary>
public sealed record DcapEndToEndCase
{
    public required string Name { get; init; }

    public required string QuoteDir { get; init; }

    public required string QuoteFile { get; init; }

    /// <summary>A bundle file (dcap-rs / Phala layout), relative to the vectors root; or null for explicit files.</summary>
    public string? Bundle { get; init; }

    public CollateralFiles? Files { get; init; }

    public required DateTimeOffset At { get; init; }

    /// <summary>Combined status; null when none can be assigned ("no matching TCB level").</summary>
    public string? Status { get; init; }

    public string? PlatformStatus { get; init; }

    public string? QeStatus { get; init; }

    public string? ModuleStatus { get; init; }

    public string? ModuleIdentity { get; init; }

    /// <summary>Expected advisory IDs, or null when the README does not list them.</summary>
    public string[]? Advisories { get; init; }

    /// <summary>The failed checks expected (empty: verification passes).</summary>
    public string[] FailedChecks { get; init; } = [];

    /// <summary>A phrase that must appear in a failure reason.</summary>
    public string? FailureText { get; init; }

    public override string ToString() => Name;

    public ICollateralSource OpenSource() => Bundle is not null
        ? OfflineCollateralStore.Open(TestVectors.Path(Bundle.Split('/')))
        : OfflineCollateralStore.FromFiles(Files! with
        {
            TcbInfo = Resolve(Files.TcbInfo),
            QeIdentity = Resolve(Files.QeIdentity),
            PckCrl = Resolve(Files.PckCrl),
            RootCaCrl = Resolve(Files.RootCaCrl),
            SigningCertificates = [.. Files.SigningCertificates.Select(f => Resolve(f)!)],
        });

    private static string? Resolve(string? relative) => relative is null ? null : TestVectors.Path(relative.Split('/'));
}

/// <summary>The README's SGX and TDX end-to-end table, row by row.</summary>
public static class DcapEndToEndCases
{
    private const string Signing2018 = "roots/intel_sgx_tcb_signing_2018-2025.pem";
    private const string Signing2025 = "roots/intel_sgx_tcb_signing_2025-2032.der";
    private const string NoMatch = "dcap.tcb_status";
    private const string PckCrlMissing = "dcap.collateral.pck_crl";
    private const string QeIdentityMissing = "dcap.collateral.qe_identity";

    private static readonly CollateralFiles GoTdxGuest2023 = new()
    {
        TcbInfo = "tdx/gotdxguest_tdx_tcbinfo_50806f000000_20230618.json",
        QeIdentity = "tdx/gotdxguest_td_qe_identity_20230608.json",
        PckCrl = "tdx/gotdxguest_pck_platform_crl_20230608.der",
        RootCaCrl = "tdx/gotdxguest_root_ca_crl_20230403.der",
        SigningCertificates = [Signing2018],
    };

    private static readonly CollateralFiles AutomataSpr202510 = new()
    {
        TcbInfo = "tdx/automata_tdx_tcbinfo_00806f050000_20251019.json",
        QeIdentity = "tdx/automata_td_qe_identity_20251013.json",
        PckCrl = "tdx/automata_pck_platform_crl_20251013.der",
        RootCaCrl = "sgx/automata_root_ca_crl_20250320.der",
        SigningCertificates = [Signing2025],
    };

    private static readonly CollateralFiles AutomataIcelake202508 = new()
    {
        TcbInfo = "sgx/automata_sgx_tcbinfo_v3_00606a000000_20250815.json",
        QeIdentity = "sgx/automata_sgx_qe_identity_20250815.json",
        PckCrl = "sgx/automata_pck_platform_crl_20250815.der",
        RootCaCrl = "sgx/automata_root_ca_crl_20250320.der",
        SigningCertificates = [Signing2025],
    };

    private static readonly CollateralFiles GoTdxGuestEmr2026 = new()
    {
        TcbInfo = "tdx/gotdxguest_tdx_tcbinfo_90c06f000000_20260201.json",
        // No TD QE identity or PCK CRL of that date exists in the vectors; this root CRL is current until 2026-04-03.
        RootCaCrl = "sgx/automata_root_ca_crl_20250320.der",
        SigningCertificates = [Signing2025],
    };

    public static readonly DcapEndToEndCase[] All =
    [
        new()
        {
            Name = "sgx-rocketlake-dcaprs",
            QuoteDir = "sgx", QuoteFile = "dcaprs_rocketlake_00a067110000_v3_quote.bin",
            Bundle = "sgx/dcaprs_rocketlake_00a067110000_full_collateral_20240826.json",
            At = At("2024-08-29T20:20:00Z"),
            Status = TcbStatus.ConfigurationAndSWHardeningNeeded, PlatformStatus = TcbStatus.ConfigurationAndSWHardeningNeeded,
            QeStatus = TcbStatus.UpToDate, Advisories = ["INTEL-SA-00289", "INTEL-SA-00615"],
        },
        new()
        {
            Name = "sgx-rocketlake-dcaprs-quote-phala-collateral",
            QuoteDir = "sgx", QuoteFile = "dcaprs_rocketlake_00a067110000_v3_quote.bin",
            Bundle = "sgx/phala_rocketlake_00a067110000_collateral_20250619.json",
            At = At("2025-07-01T00:00:00Z"),
            Status = TcbStatus.ConfigurationAndSWHardeningNeeded, PlatformStatus = TcbStatus.ConfigurationAndSWHardeningNeeded,
            QeStatus = TcbStatus.UpToDate, Advisories = ["INTEL-SA-00289", "INTEL-SA-00615"],
        },
        new()
        {
            Name = "sgx-rocketlake-phala",
            QuoteDir = "sgx", QuoteFile = "phala_rocketlake_00a067110000_v3_quote.bin",
            Bundle = "sgx/phala_rocketlake_00a067110000_collateral_20250619.json",
            At = At("2025-06-20T00:00:00Z"),
            Status = TcbStatus.ConfigurationAndSWHardeningNeeded, PlatformStatus = TcbStatus.ConfigurationAndSWHardeningNeeded,
            QeStatus = TcbStatus.UpToDate, Advisories = ["INTEL-SA-00289", "INTEL-SA-00615"],
        },
        new()
        {
            Name = "sgx-icelake-dcaprs-v2",
            QuoteDir = "sgx", QuoteFile = "dcaprs_icelake_00606a000000_v3_quote.bin",
            Files = new()
            {
                TcbInfo = "sgx/dcaprs_sgx_tcbinfo_v2_00606a000000_20250213.json",
                QeIdentity = "sgx/dcaprs_sgx_qe_identity_20250213.json",
                PckCrl = "sgx/dcaprs_pck_platform_crl_20250213.der",
                RootCaCrl = "sgx/dcaprs_root_ca_crl_20240320.der",
                SigningCertificates = [Signing2018],
            },
            At = At("2025-02-14T00:00:00Z"),
            Status = TcbStatus.OutOfDate, PlatformStatus = TcbStatus.OutOfDate, QeStatus = TcbStatus.UpToDate, Advisories = [],
        },
        new()
        {
            Name = "sgx-icelake-automata",
            QuoteDir = "sgx", QuoteFile = "automata_icelake_00606a000000_v3_quote.bin",
            Files = AutomataIcelake202508,
            At = At("2025-08-15T05:45:00Z"),
            Status = TcbStatus.SWHardeningNeeded, PlatformStatus = TcbStatus.SWHardeningNeeded, QeStatus = TcbStatus.UpToDate,
            Advisories = ["INTEL-SA-00615"],
        },
        new()
        {
            Name = "sgx-icelake-occlum",
            QuoteDir = "sgx", QuoteFile = "trustee_occlum_icelake_00606a000000_v3_quote.bin",
            Files = AutomataIcelake202508,
            At = At("2025-08-15T05:45:00Z"),
            Status = TcbStatus.OutOfDate, PlatformStatus = TcbStatus.OutOfDate, QeStatus = TcbStatus.UpToDate,
            Advisories =
            [
                "INTEL-SA-00586", "INTEL-SA-00614", "INTEL-SA-00615", "INTEL-SA-00657", "INTEL-SA-00730",
                "INTEL-SA-00738", "INTEL-SA-00767", "INTEL-SA-00828", "INTEL-SA-00837", "INTEL-SA-00960",
            ],
        },
        new()
        {
            Name = "tdx-spr-gotdxguest-no-tcb-level",
            QuoteDir = "tdx", QuoteFile = "gotdxguest_spr_50806f000000_v4_quote_trailing39.bin",
            Files = GoTdxGuest2023,
            At = At("2023-07-01T01:00:00Z"),
            Status = null, QeStatus = TcbStatus.UpToDate,
            FailedChecks = [NoMatch], FailureText = "no matching TCB level found",
        },
        new()
        {
            Name = "tdx-emr-gotdxguest-v5",
            QuoteDir = "tdx", QuoteFile = "gotdxguest_emr_90c06f000000_v5_quote.bin",
            Files = GoTdxGuestEmr2026,
            At = At("2026-02-03T01:00:00Z"),
            Status = TcbStatus.UpToDate, PlatformStatus = TcbStatus.UpToDate, ModuleStatus = TcbStatus.UpToDate, ModuleIdentity = "TDX_01",
            FailedChecks = [QeIdentityMissing, PckCrlMissing],
        },
        new()
        {
            Name = "tdx-spr-gcp-automata",
            QuoteDir = "tdx", QuoteFile = "gotdxguest_gcp_spr_00806f050000_v4_quote_8000.bin",
            Files = AutomataSpr202510,
            At = At("2025-10-20T00:00:00Z"),
            // The README computed OutOfDate [INTEL-SA-00960, -00982, -00986] comparing all 16 TEE_TCB_SVN bytes
            // (as Intel's QVL did before module identities). Current QVL (TcbLevelCheck isTdxTcbHigherOrEqual)
            // skips bytes 0-1 when the module major version is not 0 and grades the module SVN (4) against
            // TDX_01's levels instead, where 4 is UpToDate: so the top level matches.
            Status = TcbStatus.UpToDate, PlatformStatus = TcbStatus.UpToDate, ModuleStatus = TcbStatus.UpToDate, ModuleIdentity = "TDX_01",
            QeStatus = TcbStatus.UpToDate, Advisories = [],
        },
        new()
        {
            Name = "tdx-spr-dcaprs-2024",
            QuoteDir = "tdx", QuoteFile = "dcaprs_spr_00806f050000_v4_quote_8000.bin",
            Files = new()
            {
                TcbInfo = "tdx/dcaprs_tdx_tcbinfo_00806f050000_20240910.json",
                QeIdentity = "tdx/dcaprs_td_qe_identity_20240910.json",
                RootCaCrl = "sgx/dcaprs_root_ca_crl_20240320.der",
                SigningCertificates = [Signing2018],
            },
            At = At("2024-09-10T06:49:54Z"),
            Status = TcbStatus.UpToDate, PlatformStatus = TcbStatus.UpToDate, ModuleStatus = TcbStatus.UpToDate, ModuleIdentity = "TDX_01",
            QeStatus = TcbStatus.UpToDate,
            // No PCK CRL of that date exists, and a verifier must not accept a quote whose revocation it cannot check.
            FailedChecks = [PckCrlMissing],
        },
        new()
        {
            Name = "tdx-spr-dcaprs-2025",
            QuoteDir = "tdx", QuoteFile = "dcaprs_spr_00806f050000_v4_quote_8000.bin",
            Files = new()
            {
                TcbInfo = "tdx/dcaprs_tdx_tcbinfo_00806f050000_20250213.json",
                QeIdentity = "tdx/dcaprs_td_qe_identity_20250213.json",
                PckCrl = "sgx/dcaprs_pck_platform_crl_20250213.der",
                RootCaCrl = "sgx/dcaprs_root_ca_crl_20240320.der",
                SigningCertificates = [Signing2018],
            },
            At = At("2025-02-14T00:00:00Z"),
            Status = TcbStatus.OutOfDate, PlatformStatus = TcbStatus.OutOfDate,
            Advisories = ["INTEL-SA-00960", "INTEL-SA-00982", "INTEL-SA-00986"],
        },
        new()
        {
            Name = "tdx-spr-trustee",
            QuoteDir = "tdx", QuoteFile = "trustee_spr_50806f000000_v4_quote.bin",
            Files = GoTdxGuest2023,
            At = At("2023-07-01T01:00:00Z"),
            Status = TcbStatus.UpToDate, PlatformStatus = TcbStatus.UpToDate, QeStatus = TcbStatus.UpToDate,
        },
        new()
        {
            Name = "tdx-emr-trustee-no-tcb-level",
            QuoteDir = "tdx", QuoteFile = "trustee_emr_90c06f000000_v5_quote.bin",
            Files = GoTdxGuestEmr2026,
            At = At("2026-02-03T01:00:00Z"),
            Status = null,
            FailedChecks = [NoMatch, QeIdentityMissing, PckCrlMissing], FailureText = "no matching TCB level found",
        },
        new()
        {
            Name = "tdx-gnr-trustee",
            QuoteDir = "tdx", QuoteFile = "trustee_gnr_00a06d080000_v4_quote.bin",
            Files = new()
            {
                TcbInfo = "tdx/trustee_tdx_tcbinfo_00a06d080000_20251027.json",
                QeIdentity = "tdx/trustee_td_qe_identity_20251028.json",
                PckCrl = "tdx/automata_pck_platform_crl_20251013.der",
                RootCaCrl = "sgx/automata_root_ca_crl_20250320.der",
                SigningCertificates = [Signing2025],
            },
            At = At("2025-10-28T12:00:00Z"),
            Status = TcbStatus.OutOfDate, PlatformStatus = TcbStatus.OutOfDate, ModuleStatus = TcbStatus.UpToDate, ModuleIdentity = "TDX_03",
            QeStatus = TcbStatus.UpToDate,
        },
        new()
        {
            Name = "tdx-spr-azure-outofdate",
            QuoteDir = "tdx", QuoteFile = "trustee_azure_spr_00806f050000_v4_quote.bin",
            Files = AutomataSpr202510,
            At = At("2025-10-20T00:00:00Z"),
            // The README expects "no matching TCB level" because TEE_TCB_SVN[0] = 2 is below every level's
            // tdxtcbcomponents[0]. Current Intel QVL skips bytes 0-1 for module major version 1 and grades the
            // module SVN 2 against TDX_01 (OutOfDate level); the platform matches the 2nd level (OutOfDate).
            Status = TcbStatus.OutOfDate, PlatformStatus = TcbStatus.OutOfDate, ModuleStatus = TcbStatus.OutOfDate, ModuleIdentity = "TDX_01",
            QeStatus = TcbStatus.UpToDate, Advisories = ["INTEL-SA-00960", "INTEL-SA-00982", "INTEL-SA-00986"],
        },
        new()
        {
            Name = "tdx-emr-alibaba-automata",
            QuoteDir = "tdx", QuoteFile = "automata_alibaba_emr_90c06f000000_v5_quote.bin",
            Files = new()
            {
                TcbInfo = "tdx/automata_tdx_tcbinfo_90c06f000000_20250605.json",
                QeIdentity = "tdx/automata_td_qe_identity_20250604.json",
                PckCrl = "tdx/automata_pck_platform_crl_20250604.der",
                RootCaCrl = "sgx/automata_root_ca_crl_20250320.der",
                SigningCertificates = [Signing2025],
            },
            At = At("2025-06-15T00:00:00Z"),
            Status = TcbStatus.UpToDate, PlatformStatus = TcbStatus.UpToDate, ModuleStatus = TcbStatus.UpToDate, QeStatus = TcbStatus.UpToDate,
        },
        new()
        {
            Name = "tdx-b0c06f-phala",
            QuoteDir = "tdx", QuoteFile = "phala_b0c06f000000_v4_quote.bin",
            Bundle = "tdx/phala_b0c06f000000_collateral_20250619.json",
            At = At("2025-06-20T00:00:00Z"),
            Status = TcbStatus.UpToDate, PlatformStatus = TcbStatus.UpToDate, Advisories = [],
        },
        new()
        {
            Name = "tdx-emr-phala-no-tcb-level",
            QuoteDir = "tdx", QuoteFile = "phala_emr_90c06f000000_v5_quote_notcbmatch.bin",
            Bundle = "tdx/phala_emr_90c06f000000_collateral_20260218.json",
            At = At("2026-02-19T00:00:00Z"),
            Status = null,
            FailedChecks = [NoMatch], FailureText = "no matching TCB level found",
        },
    ];

    public static TheoryData<string> Names() => new(All.Select(c => c.Name));

    public static DcapEndToEndCase Get(string name) => All.Single(c => c.Name == name);

    private static DateTimeOffset At(string iso) => DateTimeOffset.Parse(iso, System.Globalization.CultureInfo.InvariantCulture);
}
