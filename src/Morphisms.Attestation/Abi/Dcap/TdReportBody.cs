using System.Buffers.Binary;

namespace Morphisms.Attestation.Abi.Dcap;

/// <summary>
/// A TD report body as it appears in a TDX quote: TDX 1.0 (584 bytes) or TDX 1.5 (648 bytes,
/// adding TEE_TCB_SVN2 and MRSERVICETD).
/// </summary>
public sealed record TdReportBody
{
    /// <summary>Size of a TDX 1.0 body.</summary>
    public const int SizeV10 = 584;

    /// <summary>Size of a TDX 1.5 body.</summary>
    public const int SizeV15 = 648;

    /// <summary>TD_ATTRIBUTES bit 0 (TUD.DEBUG): the TD runs in debug mode and the host can read its state.</summary>
    public const byte DebugFlag = 0x1;

    /// <summary>
    /// TD_ATTRIBUTES bits 7:0, the TUD ("TD under debug") group of the TDX module ABI: if any is set the TD is untrusted.
    /// Bit 0 is DEBUG; later modules put the host's profiling of the TD here too (HGS_PLUS_PROF 4, PERF_PROF 5, PMT_PROF 6),
    /// and the other bits are reserved for more of the same.
    /// </summary>
    public const ulong UnderDebugMask = 0xFF;

    /// <summary>TD_ATTRIBUTES bit 28 (SEPT_VE_DISABLE): an access to a PENDING page exits to the host instead of raising #VE in the TD.</summary>
    public const ulong SeptVeDisableFlag = 1UL << 28;

    /// <summary>TD_ATTRIBUTES bit 29 (MIGRATABLE): a migration TD the host chooses may export the TD's state to another platform.</summary>
    public const ulong MigratableFlag = 1UL << 29;

    /// <summary>Layout version.</summary>
    public required TdReportVersion Version { get; init; }

    /// <summary>The body bytes as they appear in the quote.</summary>
    public required ReadOnlyMemory<byte> Raw { get; init; }

    /// <summary>TEE_TCB_SVN, 16 bytes (byte 0 = TDX module SVN, byte 1 = module major version).</summary>
    public required ReadOnlyMemory<byte> TeeTcbSvn { get; init; }

    /// <summary>MRSEAM, 48 bytes: measurement of the TDX module.</summary>
    public required ReadOnlyMemory<byte> MrSeam { get; init; }

    /// <summary>MRSIGNERSEAM, 48 bytes (zero for Intel's module).</summary>
    public required ReadOnlyMemory<byte> MrSignerSeam { get; init; }

    /// <summary>SEAMATTRIBUTES, 8 bytes.</summary>
    public required ReadOnlyMemory<byte> SeamAttributes { get; init; }

    /// <summary>TD_ATTRIBUTES, 8 bytes (little-endian; bit 0 = DEBUG, see <see cref="Attributes"/>).</summary>
    public required ReadOnlyMemory<byte> TdAttributes { get; init; }

    /// <summary>XFAM, 8 bytes.</summary>
    public required ReadOnlyMemory<byte> Xfam { get; init; }

    /// <summary>MRTD, 48 bytes: measurement of the initial TD contents.</summary>
    public required ReadOnlyMemory<byte> MrTd { get; init; }

    /// <summary>MRCONFIGID, 48 bytes.</summary>
    public required ReadOnlyMemory<byte> MrConfigId { get; init; }

    /// <summary>MROWNER, 48 bytes.</summary>
    public required ReadOnlyMemory<byte> MrOwner { get; init; }

    /// <summary>MROWNERCONFIG, 48 bytes.</summary>
    public required ReadOnlyMemory<byte> MrOwnerConfig { get; init; }

    /// <summary>RTMR0, 48 bytes (firmware).</summary>
    public required ReadOnlyMemory<byte> Rtmr0 { get; init; }

    /// <summary>RTMR1, 48 bytes (OS loader and kernel).</summary>
    public required ReadOnlyMemory<byte> Rtmr1 { get; init; }

    /// <summary>RTMR2, 48 bytes (OS, command line, initrd).</summary>
    public required ReadOnlyMemory<byte> Rtmr2 { get; init; }

    /// <summary>RTMR3, 48 bytes (runtime).</summary>
    public required ReadOnlyMemory<byte> Rtmr3 { get; init; }

    /// <summary>REPORTDATA, 64 bytes.</summary>
    public required ReadOnlyMemory<byte> ReportData { get; init; }

    /// <summary>TEE_TCB_SVN2, 16 bytes (TDX 1.5 only).</summary>
    public ReadOnlyMemory<byte>? TeeTcbSvn2 { get; init; }

    /// <summary>MRSERVICETD, 48 bytes (TDX 1.5 only).</summary>
    public ReadOnlyMemory<byte>? MrServiceTd { get; init; }

    /// <summary>RTMR0–RTMR3 in order.</summary>
    public IReadOnlyList<ReadOnlyMemory<byte>> Rtmrs => [Rtmr0, Rtmr1, Rtmr2, Rtmr3];

    /// <summary>True when TD_ATTRIBUTES.DEBUG is set.</summary>
    public bool Debug => (TdAttributes.Span[0] & DebugFlag) != 0;

    /// <summary>TD_ATTRIBUTES as the 64-bit value the TDX module ABI numbers its bits in.</summary>
    public ulong Attributes => BinaryPrimitives.ReadUInt64LittleEndian(TdAttributes.Span);

    /// <summary>True when TD_ATTRIBUTES.MIGRATABLE is set.</summary>
    public bool Migratable => (Attributes & MigratableFlag) != 0;

    /// <summary>Parses a TDX 1.0 (584-byte) or TDX 1.5 (648-byte) body.</summary>
    /// <exception cref="EvidenceFormatException">The input has neither size.</exception>
    public static TdReportBody Parse(ReadOnlyMemory<byte> bytes)
    {
        var version = bytes.Length switch
        {
            SizeV10 => TdReportVersion.V10,
            SizeV15 => TdReportVersion.V15,
            _ => throw new EvidenceFormatException("td_report", $"must be {SizeV10} or {SizeV15} bytes, got {bytes.Length}"),
        };
        var reader = new WireReader(bytes, 0, bytes.Length);
        return Read(ref reader, version, "td_report");
    }

    internal static TdReportBody Read(ref WireReader reader, TdReportVersion version, string name)
    {
        var raw = reader.ReadBytes(version == TdReportVersion.V10 ? SizeV10 : SizeV15, name);
        var r = new WireReader(raw, 0, raw.Length);
        return new TdReportBody
        {
            Version = version,
            Raw = raw,
            TeeTcbSvn = r.ReadBytes(16, name),
            MrSeam = r.ReadBytes(48, name),
            MrSignerSeam = r.ReadBytes(48, name),
            SeamAttributes = r.ReadBytes(8, name),
            TdAttributes = r.ReadBytes(8, name),
            Xfam = r.ReadBytes(8, name),
            MrTd = r.ReadBytes(48, name),
            MrConfigId = r.ReadBytes(48, name),
            MrOwner = r.ReadBytes(48, name),
            MrOwnerConfig = r.ReadBytes(48, name),
            Rtmr0 = r.ReadBytes(48, name),
            Rtmr1 = r.ReadBytes(48, name),
            Rtmr2 = r.ReadBytes(48, name),
            Rtmr3 = r.ReadBytes(48, name),
            ReportData = r.ReadBytes(64, name),
            TeeTcbSvn2 = version == TdReportVersion.V15 ? r.ReadBytes(16, name) : (ReadOnlyMemory<byte>?)null,
            MrServiceTd = version == TdReportVersion.V15 ? r.ReadBytes(48, name) : (ReadOnlyMemory<byte>?)null,
        };
    }
}
