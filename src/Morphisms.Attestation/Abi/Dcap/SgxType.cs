namespace Morphisms.Attestation.Abi.Dcap;

/// <summary>The SGX type a PCK certificate states (OID 1.2.840.113741.1.13.1.5).</summary>
public enum SgxType
{
    /// <summary>Standard SGX (client and Xeon E).</summary>
    Standard = 0,

    /// <summary>Scalable SGX (Xeon Scalable, Ice Lake and later).</summary>
    Scalable = 1,

    /// <summary>Scalable SGX with integrity protection.</summary>
    ScalableWithIntegrity = 2,
}
