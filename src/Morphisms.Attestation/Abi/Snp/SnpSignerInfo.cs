namespace Morphisms.Attestation.Abi.Snp;

/// <summary>The signer information word at report offset 0x48.</summary>
/// <param name="Raw">The 32-bit value.</param>
public readonly record struct SnpSignerInfo(uint Raw)
{
    /// <summary>The ID block carried an author key (AUTHOR_KEY_EN, bit 0), so AUTHOR_KEY_DIGEST is meaningful.</summary>
    public bool AuthorKeyEnabled => (Raw & 1) != 0;

    /// <summary>The host masked CHIP_ID to zeros (MASK_CHIP_KEY, bit 1).</summary>
    public bool MaskChipKey => (Raw & 2) != 0;

    /// <summary>The key that signed the report.</summary>
    public SnpSigningKey SigningKey => (SnpSigningKey)((Raw >> 2) & 7);

    /// <summary>Throws for reserved bits or reserved signing-key values.</summary>
    internal static void Validate(uint raw)
    {
        if (raw >> 5 != 0)
        {
            throw new EvidenceFormatException("signer_info", $"reserved bits 5-31 must be zero (0x{raw:x})");
        }

        var key = (raw >> 2) & 7;
        if (key is > 1 and < 7)
        {
            throw new EvidenceFormatException("signing_key", $"value {key} is reserved (0 = VCEK, 1 = VLEK, 7 = none)");
        }
    }
}
