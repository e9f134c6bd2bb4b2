namespace Morphisms.Attestation.Abi.Snp;

/// <summary>
/// How the eight bytes of a <c>TCB_VERSION</c> are laid out. AMD moved the fields for Zen 5 (Turin)
/// to make room for the FMC security patch level, so the same raw value means different things per product.
/// </summary>
public enum TcbLayout
{
    /// <summary>Milan and Genoa: bootloader, TEE, four reserved bytes, SNP, microcode.</summary>
    Legacy,

    /// <summary>Turin and later: FMC, bootloader, TEE, SNP, three reserved bytes, microcode.</summary>
    Turin,
}
