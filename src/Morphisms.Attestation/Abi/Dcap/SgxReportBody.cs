using System.Buffers.Binary;

namespace Morphisms.Attestation.Abi.Dcap;

/// <summary>
/// An SGX enclave report body (384 bytes): the body of an SGX quote, and the QE report inside every
/// quote's signature data. Reserved ranges are kept only in <see cref="Raw"/>.
/// </summary>
public sealed record SgxReportBody
{
    /// <summary>Size of the body on the wire.</summary>
    public const int Size = 384;

    /// <summary>ATTRIBUTES.FLAGS bit 1: the enclave was launched in debug mode (its memory is readable by the host).</summary>
    public const ulong DebugFlag = 0x2;

    /// <summary>The 384 bytes as they appear in the quote.</summary>
    public required ReadOnlyMemory<byte> Raw { get; init; }

    /// <summary>CPUSVN, 16 bytes.</summary>
    public required ReadOnlyMemory<byte> CpuSvn { get; init; }

    /// <summary>MISCSELECT.</summary>
    public required uint MiscSelect { get; init; }

    /// <summary>ISVEXTPRODID, 16 bytes.</summary>
    public required ReadOnlyMemory<byte> IsvExtProdId { get; init; }

    /// <summary>ATTRIBUTES, 16 bytes: FLAGS (u64 LE) then XFRM (u64 LE).</summary>
    public required ReadOnlyMemory<byte> Attributes { get; init; }

    /// <summary>MRENCLAVE, 32 bytes.</summary>
    public required ReadOnlyMemory<byte> MrEnclave { get; init; }

    /// <summary>MRSIGNER, 32 bytes.</summary>
    public required ReadOnlyMemory<byte> MrSigner { get; init; }

    /// <summary>CONFIGID, 64 bytes.</summary>
    public required ReadOnlyMemory<byte> ConfigId { get; init; }

    /// <summary>ISVPRODID.</summary>
    public required ushort IsvProdId { get; init; }

    /// <summary>ISVSVN.</summary>
    public required ushort IsvSvn { get; init; }

    /// <summary>CONFIGSVN.</summary>
    public required ushort ConfigSvn { get; init; }

    /// <summary>ISVFAMILYID, 16 bytes.</summary>
    public required ReadOnlyMemory<byte> IsvFamilyId { get; init; }

    /// <summary>REPORTDATA, 64 bytes.</summary>
    public required ReadOnlyMemory<byte> ReportData { get; init; }

    /// <summary>ATTRIBUTES.FLAGS.</summary>
    public ulong AttributeFlags => BinaryPrimitives.ReadUInt64LittleEndian(Attributes.Span);

    /// <summary>ATTRIBUTES.XFRM.</summary>
    public ulong Xfrm => BinaryPrimitives.ReadUInt64LittleEndian(Attributes.Span[8..]);

    /// <summary>True when ATTRIBUTES.DEBUG is set.</summary>
    public bool Debug => (AttributeFlags & DebugFlag) != 0;

    /// <summary>Parses exactly <see cref="Size"/> bytes.</summary>
    /// <exception cref="EvidenceFormatException">The input is not 384 bytes.</exception>
    public static SgxReportBody Parse(ReadOnlyMemory<byte> bytes)
    {
        if (bytes.Length != Size)
        {
            throw new EvidenceFormatException("sgx_report", $"must be {Size} bytes, got {bytes.Length}");
        }

        var reader = new WireReader(bytes, 0, Size);
        return Read(ref reader, "sgx_report");
    }

    internal static SgxReportBody Read(ref WireReader reader, string name)
    {
        var raw = reader.ReadBytes(Size, name);
        var r = new WireReader(raw, 0, Size);
        var cpuSvn = r.ReadBytes(16, name);
        var miscSelect = r.ReadUInt32(name);
        r.ReadBytes(12, name);
        var extProdId = r.ReadBytes(16, name);
        var attributes = r.ReadBytes(16, name);
        var mrEnclave = r.ReadBytes(32, name);
        r.ReadBytes(32, name);
        var mrSigner = r.ReadBytes(32, name);
        r.ReadBytes(32, name);
        var configId = r.ReadBytes(64, name);
        var prodId = r.ReadUInt16(name);
        var isvSvn = r.ReadUInt16(name);
        var configSvn = r.ReadUInt16(name);
        r.ReadBytes(42, name);
        var familyId = r.ReadBytes(16, name);
        var reportData = r.ReadBytes(64, name);
        return new SgxReportBody
        {
            Raw = raw,
            CpuSvn = cpuSvn,
            MiscSelect = miscSelect,
            IsvExtProdId = extProdId,
            Attributes = attributes,
            MrEnclave = mrEnclave,
            MrSigner = mrSigner,
            ConfigId = configId,
            IsvProdId = prodId,
            IsvSvn = isvSvn,
            ConfigSvn = configSvn,
            IsvFamilyId = familyId,
            ReportData = reportData,
        };
    }
}
