namespace Morphisms.Attestation.Abi.Dcap;

/// <summary>The body types a DCAP quote can carry (the v5 body_type values; implied by tee_type in v3/v4).</summary>
public enum QuoteBodyType : ushort
{
    /// <summary>SGX enclave report, 384 bytes.</summary>
    SgxReport = 1,

    /// <summary>TDX 1.0 TD report, 584 bytes.</summary>
    TdReport10 = 2,

    /// <summary>TDX 1.5 TD report, 648 bytes.</summary>
    TdReport15 = 3,
}
