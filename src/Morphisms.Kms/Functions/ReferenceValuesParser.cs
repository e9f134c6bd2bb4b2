using Morphisms.Attestation.Collateral;

namespace Morphisms.Kms.Functions;

/// <summary>Parses the <c>snp</c>, <c>sgx</c>, <c>tdx</c> and <c>simulated</c> sections of a registry write.</summary>
internal static class ReferenceValuesParser
{
    /// <summary>Intel's TCB status names, as accepted in <c>accepted_tcb_statuses</c>.</summary>
    public static readonly IReadOnlyList<string> TcbStatuses =
    [
        TcbStatus.UpToDate, TcbStatus.SWHardeningNeeded, TcbStatus.ConfigurationNeeded, TcbStatus.ConfigurationAndSWHardeningNeeded,
        TcbStatus.OutOfDate, TcbStatus.OutOfDateConfigurationNeeded, TcbStatus.TDRelaunchAdvised, TcbStatus.TDRelaunchAdvisedConfigurationNeeded,
    ];

    /// <summary>Parses the TEE sections present in <paramref name="root"/>; at least one must configure something.</summary>
    public static ReferenceValues Parse(StrictObject root)
    {
        var values = new ReferenceValues
        {
            Snp = root.Object("snp") is { } snp ? Snp(snp) : null,
            Sgx = root.Object("sgx") is { } sgx ? Sgx(sgx) : null,
            Tdx = root.Object("tdx") is { } tdx ? Tdx(tdx) : null,
            Simulated = root.Object("simulated") is { } sim ? Simulated(sim) : null,
        };
        return values.IsEmpty
            ? throw StrictObject.Invalid("snp", "reference values for at least one of snp, sgx, tdx or simulated")
            : values;
    }

    private static SnpReference Snp(StrictObject o)
    {
        o.RejectUnknown("measurements", "host_data", WorkloadBinding.OptIn, "minimum_tcb", SnpTcbFloor.OptOut, "allow_migration_agent", "require_smt_disabled", "require_single_socket", "max_vmpl", "min_guest_svn");
        var reference = new SnpReference
        {
            Measurements = o.HexList("measurements", 48) ?? throw StrictObject.Invalid("snp.measurements", "a list of 48-byte launch measurements (required)"),
            HostData = o.Hex("host_data", 32),
            LaunchMeasurementBindsWorkload = o.Bool(WorkloadBinding.OptIn) ?? false,
            MinimumTcb = o.Object("minimum_tcb") is { } tcb ? MinimumTcb(tcb) : null,
            AllowAnyTcb = o.Bool(SnpTcbFloor.OptOut) ?? false,
            AllowMigrationAgent = o.Bool("allow_migration_agent") ?? false,
            RequireSmtDisabled = o.Bool("require_smt_disabled") ?? false,
            RequireSingleSocket = o.Bool("require_single_socket") ?? false,
            MaxVmpl = (uint?)o.Int("max_vmpl", 0, 3),
            MinGuestSvn = (uint?)o.Int("min_guest_svn", 0, uint.MaxValue),
        };

        // A floor and "any" at once is a contradiction, not something to pick one side of. A missing floor is refused
        // by the registry, not here: re-sending values it already holds without one is still a valid write.
        if (reference is { AllowAnyTcb: true, MinimumTcb: not null })
        {
            throw StrictObject.Invalid($"snp.{SnpTcbFloor.OptOut}", "false or absent when snp.minimum_tcb is set");
        }

        return WorkloadBinding.Check(reference) is { } missing ? throw missing.ToBadRequest() : reference;
    }

    private static SnpMinimumTcb MinimumTcb(StrictObject o)
    {
        o.RejectUnknown("bootloader", "tee", "snp", "microcode", "fmc");
        byte Spl(string name) => (byte)(o.Int(name, 0, 255) ?? 0);
        return new SnpMinimumTcb(Spl("bootloader"), Spl("tee"), Spl("snp"), Spl("microcode"), (byte?)o.Int("fmc", 0, 255));
    }

    private static SgxReference Sgx(StrictObject o)
    {
        o.RejectUnknown("mrenclaves", "mrsigner", "isv_prod_id", "min_isv_svn", "accepted_tcb_statuses");
        var reference = new SgxReference
        {
            MrEnclaves = o.HexList("mrenclaves", 32),
            MrSigner = o.Hex("mrsigner", 32),
            IsvProdId = (ushort?)o.Int("isv_prod_id", 0, ushort.MaxValue),
            MinIsvSvn = (ushort?)o.Int("min_isv_svn", 0, ushort.MaxValue),
            AcceptedTcbStatuses = o.OneOf("accepted_tcb_statuses", TcbStatuses) ?? [TcbStatus.UpToDate],
        };
        if (reference.MrEnclaves is null && reference.MrSigner is null)
        {
            throw StrictObject.Invalid("sgx.mrenclaves", "MRENCLAVE values, or an mrsigner with isv_prod_id and min_isv_svn");
        }

        // A signer identity without product and version would accept every enclave that signer ever built.
        if (reference.MrSigner is not null && (reference.IsvProdId is null || reference.MinIsvSvn is null))
        {
            throw StrictObject.Invalid(reference.IsvProdId is null ? "sgx.isv_prod_id" : "sgx.min_isv_svn", "a value whenever sgx.mrsigner is set");
        }

        if (reference.MrSigner is null && (reference.IsvProdId is not null || reference.MinIsvSvn is not null))
        {
            throw StrictObject.Invalid("sgx.mrsigner", "a value whenever isv_prod_id or min_isv_svn is set");
        }

        return reference;
    }

    private static TdxReference Tdx(StrictObject o)
    {
        o.RejectUnknown("mrtds", "rtmr0", "rtmr1", "rtmr2", "rtmr3", "mrconfigid", WorkloadBinding.OptIn, "accepted_tcb_statuses", "allow_migratable");
        var reference = new TdxReference
        {
            MrTds = o.HexList("mrtds", 48) ?? throw StrictObject.Invalid("tdx.mrtds", "a list of 48-byte MRTD values (required)"),
            Rtmr0 = o.Hex("rtmr0", 48),
            Rtmr1 = o.Hex("rtmr1", 48),
            Rtmr2 = o.Hex("rtmr2", 48),
            Rtmr3 = o.Hex("rtmr3", 48),
            MrConfigId = o.Hex("mrconfigid", 48),
            LaunchMeasurementBindsWorkload = o.Bool(WorkloadBinding.OptIn) ?? false,
            AcceptedTcbStatuses = o.OneOf("accepted_tcb_statuses", TcbStatuses) ?? [TcbStatus.UpToDate],
            AllowMigratable = o.Bool("allow_migratable") ?? false,
        };
        return WorkloadBinding.Check(reference) is { } missing ? throw missing.ToBadRequest() : reference;
    }

    private static SimulatedReference Simulated(StrictObject o)
    {
        o.RejectUnknown("snp", "sgx");
        var reference = new SimulatedReference { Snp = o.HexList("snp", 48), Sgx = o.HexList("sgx", 32) };
        return reference.Snp is null && reference.Sgx is null
            ? throw StrictObject.Invalid("simulated", "measurements for the snp format (48 bytes) or the sgx format (32 bytes)")
            : reference;
    }
}
