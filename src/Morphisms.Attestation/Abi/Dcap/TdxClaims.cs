namespace Morphisms.Attestation.Abi.Dcap;

/// <summary>What a TDX quote claims about the trust domain. <see cref="Report"/> holds every field; the rest are shortcuts.</summary>
public sealed record TdxClaims : DcapClaims
{
    /// <summary>The TD report body.</summary>
    public required TdReportBody Report { get; init; }

    /// <inheritdoc />
    public override TeeType Tee => TeeType.Tdx;

    /// <summary>MRTD.</summary>
    public override ReadOnlyMemory<byte> Measurement => Report.MrTd;

    /// <inheritdoc />
    public override ReadOnlyMemory<byte> ReportData => Report.ReportData;

    /// <summary>TD_ATTRIBUTES.DEBUG (bit 0, TUD.DEBUG).</summary>
    public override bool DebugAllowed => Report.Debug;

    /// <summary>MRTD, 48 bytes.</summary>
    public ReadOnlyMemory<byte> MrTd => Report.MrTd;

    /// <summary>RTMR0, 48 bytes.</summary>
    public ReadOnlyMemory<byte> Rtmr0 => Report.Rtmr0;

    /// <summary>RTMR1, 48 bytes.</summary>
    public ReadOnlyMemory<byte> Rtmr1 => Report.Rtmr1;

    /// <summary>RTMR2, 48 bytes.</summary>
    public ReadOnlyMemory<byte> Rtmr2 => Report.Rtmr2;

    /// <summary>RTMR3, 48 bytes.</summary>
    public ReadOnlyMemory<byte> Rtmr3 => Report.Rtmr3;

    /// <summary>MRCONFIGID, 48 bytes.</summary>
    public ReadOnlyMemory<byte> MrConfigId => Report.MrConfigId;

    /// <summary>MROWNER, 48 bytes.</summary>
    public ReadOnlyMemory<byte> MrOwner => Report.MrOwner;

    /// <summary>MROWNERCONFIG, 48 bytes.</summary>
    public ReadOnlyMemory<byte> MrOwnerConfig => Report.MrOwnerConfig;

    /// <summary>MRSEAM, 48 bytes.</summary>
    public ReadOnlyMemory<byte> MrSeam => Report.MrSeam;

    /// <summary>MRSIGNERSEAM, 48 bytes.</summary>
    public ReadOnlyMemory<byte> MrSignerSeam => Report.MrSignerSeam;

    /// <summary>SEAMATTRIBUTES, 8 bytes.</summary>
    public ReadOnlyMemory<byte> SeamAttributes => Report.SeamAttributes;

    /// <summary>TD_ATTRIBUTES, 8 bytes.</summary>
    public ReadOnlyMemory<byte> TdAttributes => Report.TdAttributes;

    /// <summary>XFAM, 8 bytes.</summary>
    public ReadOnlyMemory<byte> Xfam => Report.Xfam;

    /// <summary>TEE_TCB_SVN, 16 bytes.</summary>
    public ReadOnlyMemory<byte> TeeTcbSvn => Report.TeeTcbSvn;

    /// <summary>TEE_TCB_SVN2, 16 bytes (TDX 1.5 only).</summary>
    public ReadOnlyMemory<byte>? TeeTcbSvn2 => Report.TeeTcbSvn2;

    /// <summary>MRSERVICETD, 48 bytes (TDX 1.5 only).</summary>
    public ReadOnlyMemory<byte>? MrServiceTd => Report.MrServiceTd;
}
