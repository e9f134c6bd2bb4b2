namespace Morphisms.Attestation.Abi.Snp;

/// <summary>
/// PLATFORM_INFO (report offset 0x40): what the platform had enabled when the report was made.
/// Unknown bits are kept in <see cref="Raw"/> rather than rejected, because AMD adds bits as firmware evolves.
/// </summary>
/// <param name="Raw">The 64-bit value.</param>
public readonly record struct SnpPlatformInfo(ulong Raw)
{
    /// <summary>Simultaneous multithreading is enabled.</summary>
    public bool SmtEnabled => Bit(0);

    /// <summary>Transparent secure memory encryption is enabled.</summary>
    public bool TsmeEnabled => Bit(1);

    /// <summary>The platform uses error-correcting memory.</summary>
    public bool EccEnabled => Bit(2);

    /// <summary>Running Average Power Limit is disabled.</summary>
    public bool RaplDisabled => Bit(3);

    /// <summary>Ciphertext hiding is enabled for DRAM.</summary>
    public bool CiphertextHidingEnabled => Bit(4);

    /// <summary>The DRAM alias check (BadRAM mitigation) completed and found no aliases.</summary>
    public bool AliasCheckComplete => Bit(5);

    /// <inheritdoc />
    public override string ToString() => $"0x{Raw:x}";

    private bool Bit(int bit) => (Raw & (1UL << bit)) != 0;
}
