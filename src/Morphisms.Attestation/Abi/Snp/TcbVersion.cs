using System.Buffers.Binary;

namespace Morphisms.Attestation.Abi.Snp;

/// <summary>
/// An SEV-SNP <c>TCB_VERSION</c>: the security patch levels (SPLs) of the AMD secure processor
/// bootloader, its OS (TEE), the SNP firmware and the CPU microcode, plus the FMC on Turin.
/// </summary>
/// <param name="Raw">The 64-bit little-endian value as it appears in the report.</param>
/// <param name="Layout">Which byte holds which component; depends on the product.</param>
public readonly record struct TcbVersion(ulong Raw, TcbLayout Layout)
{
    /// <summary>PSP bootloader SPL.</summary>
    public byte Bootloader => Byte(Layout == TcbLayout.Turin ? 1 : 0);

    /// <summary>PSP operating system SPL.</summary>
    public byte Tee => Byte(Layout == TcbLayout.Turin ? 2 : 1);

    /// <summary>SNP firmware SPL.</summary>
    public byte Snp => Byte(Layout == TcbLayout.Turin ? 3 : 6);

    /// <summary>Lowest microcode patch level across all cores.</summary>
    public byte Microcode => Byte(7);

    /// <summary>FMC SPL; only Turin and later have one.</summary>
    public byte? Fmc => Layout == TcbLayout.Turin ? Byte(0) : null;

    /// <summary>
    /// The bytes the layout marks reserved. On Milan/Genoa AMD's KDS certifies them as SPL4–SPL7,
    /// so they are compared with the certificate rather than required to be zero.
    /// </summary>
    public ReadOnlySpan<byte> ReservedBytes
    {
        get
        {
            var bytes = ToBytes();
            return Layout == TcbLayout.Turin ? bytes.AsSpan(4, 3) : bytes.AsSpan(2, 4);
        }
    }

    /// <summary>Reads a TCB version from eight little-endian bytes.</summary>
    public static TcbVersion Read(ReadOnlySpan<byte> eightBytes, TcbLayout layout) =>
        new(BinaryPrimitives.ReadUInt64LittleEndian(eightBytes), layout);

    /// <summary>
    /// Builds a TCB version from its components. Passing <paramref name="fmc"/> selects the Turin
    /// layout; otherwise the Milan/Genoa layout is used.
    /// </summary>
    public static TcbVersion FromParts(byte bootloader, byte tee, byte snp, byte microcode, byte? fmc = null)
    {
        Span<byte> b = stackalloc byte[8];
        b.Clear();
        if (fmc is { } f)
        {
            b[0] = f;
            b[1] = bootloader;
            b[2] = tee;
            b[3] = snp;
            b[7] = microcode;
            return Read(b, TcbLayout.Turin);
        }

        b[0] = bootloader;
        b[1] = tee;
        b[6] = snp;
        b[7] = microcode;
        return Read(b, TcbLayout.Legacy);
    }

    /// <summary>
    /// True when every component is at least the one in <paramref name="minimum"/>. Components are
    /// compared by name, so a minimum written in one layout applies to a value in the other; the FMC
    /// is compared only when both have one.
    /// </summary>
    public bool IsAtLeast(TcbVersion minimum) =>
        Bootloader >= minimum.Bootloader
        && Tee >= minimum.Tee
        && Snp >= minimum.Snp
        && Microcode >= minimum.Microcode
        && (Fmc is null || minimum.Fmc is null || Fmc >= minimum.Fmc);

    /// <summary>The eight little-endian bytes.</summary>
    public byte[] ToBytes()
    {
        var bytes = new byte[8];
        BinaryPrimitives.WriteUInt64LittleEndian(bytes, Raw);
        return bytes;
    }

    /// <inheritdoc />
    public override string ToString() =>
        (Fmc is { } fmc ? $"fmc={fmc} " : string.Empty) + $"bl={Bootloader} tee={Tee} snp={Snp} ucode={Microcode}";

    private byte Byte(int index) => (byte)(Raw >> (8 * index));
}
