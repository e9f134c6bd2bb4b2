using Morphisms.Attestation.Abi.Snp;
using Morphisms.Attestation.Validate;
using Morphisms.Kms.Functions;

namespace Morphisms.Kms.Attest;

/// <summary>
/// Turns registered reference values into the attestation library's policies. Debug is never allowed: a function
/// whose TEE the host can debug has no confidentiality, so no registration can ask for it (nor, for TDX, any other TUD
/// bit, which the library refuses without an opt-out).
/// </summary>
internal static class ReferencePolicies
{
    /// <summary>The SNP policy of a hardware registration.</summary>
    public static SnpPolicy Snp(SnpReference r) => new()
    {
        Measurements = [.. r.Measurements.Select(Convert.FromHexString)],
        HostData = r.HostData is { } hostData ? Convert.FromHexString(hostData) : null,
        MinimumTcb = r.MinimumTcb is { } t ? TcbVersion.FromParts(t.Bootloader, t.Tee, t.Snp, t.Microcode, t.Fmc) : null,
        AllowMigrationAgent = r.AllowMigrationAgent,
        RequireSmtDisabled = r.RequireSmtDisabled,
        RequireSingleSocket = r.RequireSingleSocket,
        // VMPL 0 unless the registration says otherwise: under a paravisor or SVSM a less privileged VMPL can get
        // reports carrying the VMPL 0 image's MEASUREMENT beside REPORT_DATA of its own choosing.
        MaximumVmpl = r.MaxVmpl ?? 0,
        MinimumGuestSvn = r.MinGuestSvn,
        AllowDebug = false,
    };

    /// <summary>The SGX policy of a hardware registration.</summary>
    public static SgxPolicy Sgx(SgxReference r) => new()
    {
        MrEnclaves = r.MrEnclaves?.Select(Convert.FromHexString).ToList(),
        MrSigner = r.MrSigner is { } signer ? Convert.FromHexString(signer) : null,
        IsvProdId = r.IsvProdId,
        MinimumIsvSvn = r.MinIsvSvn,
        AcceptedTcbStatuses = r.AcceptedTcbStatuses,
        AllowDebug = false,
    };

    /// <summary>The TDX policy of a hardware registration.</summary>
    public static TdxPolicy Tdx(TdxReference r) => new()
    {
        MrTds = [.. r.MrTds.Select(Convert.FromHexString)],
        Rtmr0 = Bytes(r.Rtmr0),
        Rtmr1 = Bytes(r.Rtmr1),
        Rtmr2 = Bytes(r.Rtmr2),
        Rtmr3 = Bytes(r.Rtmr3),
        MrConfigId = Bytes(r.MrConfigId),
        AcceptedTcbStatuses = r.AcceptedTcbStatuses,
        AllowMigratable = r.AllowMigratable,
        AllowDebug = false,
    };

    /// <summary>The policy for SNP-format simulated evidence with a registered measurement.</summary>
    public static SnpPolicy SimulatedSnp(string measurement) => new() { Measurements = [Convert.FromHexString(measurement)] };

    /// <summary>The policy for SGX-format simulated evidence with a registered MRENCLAVE.</summary>
    public static SgxPolicy SimulatedSgx(string mrEnclave) => new() { MrEnclaves = [Convert.FromHexString(mrEnclave)] };

    private static byte[]? Bytes(string? hex) => hex is null ? null : Convert.FromHexString(hex);
}
