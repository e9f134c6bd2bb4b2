using System.Text.Json.Serialization;

namespace Morphisms.Kms.Functions;

/// <summary>
/// What an instance of one function revision may look like, per TEE type. Byte values are lowercase hex and the
/// JSON names are the API's, so the stored record reads like the request and two sets compare by their serialisation.
/// </summary>
internal sealed record ReferenceValues
{
    /// <summary>SEV-SNP reference values, or null when the function does not run on SNP.</summary>
    public SnpReference? Snp { get; init; }

    /// <summary>SGX reference values, or null.</summary>
    public SgxReference? Sgx { get; init; }

    /// <summary>TDX reference values, or null.</summary>
    public TdxReference? Tdx { get; init; }

    /// <summary>Measurements of the simulated TEE, or null.</summary>
    public SimulatedReference? Simulated { get; init; }

    /// <summary>Whether no TEE type is configured.</summary>
    [JsonIgnore]
    public bool IsEmpty => Snp is null && Sgx is null && Tdx is null && Simulated is null;
}

/// <summary>SEV-SNP: launch measurements and the guest policy and TCB the guest must have.</summary>
internal sealed record SnpReference
{
    /// <summary>Accepted MEASUREMENT values (48 bytes, hex).</summary>
    public List<string> Measurements { get; init; } = [];

    /// <summary>
    /// Required HOST_DATA (32 bytes, hex): what binds the function when the launch measurement covers only a shared
    /// guest image (Kata). Null only with <see cref="LaunchMeasurementBindsWorkload"/> (see <see cref="WorkloadBinding"/>).
    /// </summary>
    public string? HostData { get; init; }

    /// <summary>
    /// The registrant's statement that the function is built into the measured guest image, so the launch measurement
    /// alone identifies it and HOST_DATA may be left out. Kept with the revision so a read and the audit show it.
    /// </summary>
    public bool LaunchMeasurementBindsWorkload { get; init; }

    /// <summary>
    /// Minimum reported, committed and launch TCB, or null for any: then only with <see cref="AllowAnyTcb"/> in a new
    /// write, or in a revision stored before a floor was required (see <see cref="SnpTcbFloor"/>).
    /// </summary>
    public SnpMinimumTcb? MinimumTcb { get; init; }

    /// <summary>
    /// The registrant's explicit choice to accept SEV-SNP evidence from any firmware and microcode version (no
    /// <see cref="MinimumTcb"/>). Kept with the revision so a read and the audit show it; left out of the JSON when
    /// false, so values stored before the field existed serialise, and compare, as they did.
    /// </summary>
    [JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingDefault)]
    public bool AllowAnyTcb { get; init; }

    /// <summary>Accept a guest policy that allows a migration agent.</summary>
    public bool AllowMigrationAgent { get; init; }

    /// <summary>Require SMT disabled on the host.</summary>
    public bool RequireSmtDisabled { get; init; }

    /// <summary>Require the guest policy to pin the guest to one socket.</summary>
    public bool RequireSingleSocket { get; init; }

    /// <summary>
    /// The least privileged VMPL a report may come from; null (not given) means 0, the only VMPL whose REPORT_DATA the
    /// measured image alone controls. 3 accepts any VMPL.
    /// </summary>
    public uint? MaxVmpl { get; init; }

    /// <summary>Minimum GUEST_SVN, or null.</summary>
    public uint? MinGuestSvn { get; init; }
}

/// <summary>An SNP TCB floor by component (SPLs).</summary>
/// <param name="Bootloader">PSP bootloader SPL.</param>
/// <param name="Tee">PSP OS SPL.</param>
/// <param name="Snp">SNP firmware SPL.</param>
/// <param name="Microcode">Microcode SPL.</param>
/// <param name="Fmc">FMC SPL (Turin), or null.</param>
internal sealed record SnpMinimumTcb(byte Bootloader, byte Tee, byte Snp, byte Microcode, byte? Fmc);

/// <summary>SGX: MRENCLAVE values, or a signer identity (MRSIGNER, ISVPRODID, minimum ISVSVN), and the TCB statuses accepted.</summary>
internal sealed record SgxReference
{
    /// <summary>Accepted MRENCLAVE values (32 bytes, hex), or null when only the signer identity is checked.</summary>
    [JsonPropertyName("mrenclaves")]
    public List<string>? MrEnclaves { get; init; }

    /// <summary>Required MRSIGNER (32 bytes, hex), or null.</summary>
    [JsonPropertyName("mrsigner")]
    public string? MrSigner { get; init; }

    /// <summary>Required ISVPRODID when <see cref="MrSigner"/> is set.</summary>
    public ushort? IsvProdId { get; init; }

    /// <summary>Minimum ISVSVN when <see cref="MrSigner"/> is set.</summary>
    public ushort? MinIsvSvn { get; init; }

    /// <summary>Intel TCB statuses accepted.</summary>
    public List<string> AcceptedTcbStatuses { get; init; } = [];
}

/// <summary>TDX: MRTD values, optional RTMRs and MRCONFIGID, and the TCB statuses accepted.</summary>
internal sealed record TdxReference
{
    /// <summary>Accepted MRTD values (48 bytes, hex).</summary>
    [JsonPropertyName("mrtds")]
    public List<string> MrTds { get; init; } = [];

    /// <summary>Required RTMR0 (48 bytes, hex), or null.</summary>
    public string? Rtmr0 { get; init; }

    /// <summary>Required RTMR1 (the guest kernel and boot loader); a registration must set it (see <see cref="WorkloadBinding"/>).</summary>
    public string? Rtmr1 { get; init; }

    /// <summary>Required RTMR2 (the kernel command line and initrd); a registration must set it.</summary>
    public string? Rtmr2 { get; init; }

    /// <summary>Required RTMR3, or null.</summary>
    public string? Rtmr3 { get; init; }

    /// <summary>
    /// Required MRCONFIGID: what binds the function on a shared guest image (with Kata, SHA-384 of the initdata
    /// document). Null only with <see cref="LaunchMeasurementBindsWorkload"/>.
    /// </summary>
    [JsonPropertyName("mrconfigid")]
    public string? MrConfigId { get; init; }

    /// <summary>As <see cref="SnpReference.LaunchMeasurementBindsWorkload"/>: the function is in the image RTMR1/RTMR2 measure.</summary>
    public bool LaunchMeasurementBindsWorkload { get; init; }

    /// <summary>
    /// Accept a TD whose TD_ATTRIBUTES.MIGRATABLE is set (a migration TD the host chooses may export it), as
    /// <see cref="SnpReference.AllowMigrationAgent"/>; refused by default. Left out of the JSON when false, so values
    /// stored before the field existed serialise, and compare, as they did.
    /// </summary>
    [JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingDefault)]
    public bool AllowMigratable { get; init; }

    /// <summary>Intel TCB statuses accepted.</summary>
    public List<string> AcceptedTcbStatuses { get; init; } = [];
}

/// <summary>
/// Measurements of the simulated TEE. Its evidence comes in the SNP report or the SGX quote format, and a
/// measurement is only meaningful in one of them (48-byte SHA-384 vs 32-byte SHA-256), so each format has its list.
/// </summary>
internal sealed record SimulatedReference
{
    /// <summary>Accepted measurements of SNP-format simulated evidence (48 bytes, hex).</summary>
    public List<string>? Snp { get; init; }

    /// <summary>Accepted MRENCLAVE values of SGX-format simulated evidence (32 bytes, hex).</summary>
    public List<string>? Sgx { get; init; }
}
