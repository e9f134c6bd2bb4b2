namespace Morphisms.Attestation.Abi.Dcap;

/// <summary>What an SGX quote claims about the enclave. <see cref="Report"/> holds every field; the rest are shortcuts.</summary>
public sealed record SgxClaims : DcapClaims
{
    /// <summary>The enclave's report body.</summary>
    public required SgxReportBody Report { get; init; }

    /// <inheritdoc />
    public override TeeType Tee => TeeType.Sgx;

    /// <summary>MRENCLAVE.</summary>
    public override ReadOnlyMemory<byte> Measurement => Report.MrEnclave;

    /// <inheritdoc />
    public override ReadOnlyMemory<byte> ReportData => Report.ReportData;

    /// <summary>ATTRIBUTES.DEBUG (bit 1 of the flags).</summary>
    public override bool DebugAllowed => Report.Debug;

    /// <summary>MRENCLAVE, 32 bytes.</summary>
    public ReadOnlyMemory<byte> MrEnclave => Report.MrEnclave;

    /// <summary>MRSIGNER, 32 bytes.</summary>
    public ReadOnlyMemory<byte> MrSigner => Report.MrSigner;

    /// <summary>ISVPRODID.</summary>
    public ushort IsvProdId => Report.IsvProdId;

    /// <summary>ISVSVN.</summary>
    public ushort IsvSvn => Report.IsvSvn;

    /// <summary>ATTRIBUTES, 16 bytes.</summary>
    public ReadOnlyMemory<byte> Attributes => Report.Attributes;

    /// <summary>MISCSELECT.</summary>
    public uint MiscSelect => Report.MiscSelect;

    /// <summary>CPUSVN, 16 bytes.</summary>
    public ReadOnlyMemory<byte> CpuSvn => Report.CpuSvn;

    /// <summary>CONFIGID, 64 bytes.</summary>
    public ReadOnlyMemory<byte> ConfigId => Report.ConfigId;

    /// <summary>CONFIGSVN.</summary>
    public ushort ConfigSvn => Report.ConfigSvn;

    /// <summary>ISVEXTPRODID, 16 bytes.</summary>
    public ReadOnlyMemory<byte> IsvExtProdId => Report.IsvExtProdId;

    /// <summary>ISVFAMILYID, 16 bytes.</summary>
    public ReadOnlyMemory<byte> IsvFamilyId => Report.IsvFamilyId;
}
