namespace Morphisms.Attestation.Abi.Snp;

/// <summary>
/// The SEV-SNP guest policy the VM was launched with (report offset 0x08). The hypervisor cannot
/// change it after launch, so it tells a verifier what the guest owner allowed.
/// </summary>
/// <param name="Raw">The 64-bit policy value.</param>
public readonly record struct GuestPolicy(ulong Raw)
{
    /// <summary>Bit 17 is reserved and the firmware requires it to be one.</summary>
    internal const int ReservedOneBit = 17;

    /// <summary>Highest bit the ABI defines (PAGE_SWAP_DISABLE, spec 1.58); everything above must be zero.</summary>
    internal const int HighestDefinedBit = 25;

    /// <summary>Minimum ABI minor version the guest requires.</summary>
    public byte AbiMinor => (byte)Raw;

    /// <summary>Minimum ABI major version the guest requires.</summary>
    public byte AbiMajor => (byte)(Raw >> 8);

    /// <summary>Simultaneous multithreading may be enabled on the host (bit 16).</summary>
    public bool SmtAllowed => Bit(16);

    /// <summary>A migration agent may be associated with the guest (bit 18).</summary>
    public bool MigrationAgentAllowed => Bit(18);

    /// <summary>The host may debug (decrypt) the guest (bit 19). A debuggable guest keeps no secrets.</summary>
    public bool DebugAllowed => Bit(19);

    /// <summary>The guest may only run on a single socket (bit 20).</summary>
    public bool SingleSocketRequired => Bit(20);

    /// <summary>CXL may be populated with devices or memory (bit 21).</summary>
    public bool CxlAllowed => Bit(21);

    /// <summary>AES-256-XTS is required for memory encryption (bit 22).</summary>
    public bool MemoryAes256XtsRequired => Bit(22);

    /// <summary>Running Average Power Limit must be disabled (bit 23).</summary>
    public bool RaplDisableRequired => Bit(23);

    /// <summary>Ciphertext hiding for DRAM must be enabled (bit 24).</summary>
    public bool CiphertextHidingRequired => Bit(24);

    /// <summary>Guest page move and swap commands are disabled (bit 25).</summary>
    public bool PageSwapDisabled => Bit(25);

    /// <inheritdoc />
    public override string ToString() => $"0x{Raw:x}";

    /// <summary>Throws when reserved bits are wrong: firmware never produces such a policy.</summary>
    internal static void Validate(ulong raw)
    {
        if ((raw & (1UL << ReservedOneBit)) == 0)
        {
            throw new EvidenceFormatException("policy", $"reserved bit {ReservedOneBit} must be 1 (policy 0x{raw:x})");
        }

        if (raw >> (HighestDefinedBit + 1) != 0)
        {
            throw new EvidenceFormatException("policy", $"reserved bits {HighestDefinedBit + 1}-63 must be zero (policy 0x{raw:x})");
        }
    }

    private bool Bit(int bit) => (Raw & (1UL << bit)) != 0;
}
