namespace Morphisms.Attestation.Abi.Snp;

/// <summary>Which key signed the report (SIGNING_KEY, bits 2–4 at offset 0x48).</summary>
public enum SnpSigningKey
{
    /// <summary>Versioned Chip Endorsement Key: derived from the chip's secret and the TCB; certified by AMD's ASK.</summary>
    Vcek = 0,

    /// <summary>Versioned Loaded Endorsement Key: issued to a cloud provider; certified by AMD's ASVK.</summary>
    Vlek = 1,

    /// <summary>The report is not signed.</summary>
    None = 7,
}
