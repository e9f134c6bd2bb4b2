namespace Morphisms.Attestation.Abi.Dcap;

/// <summary>Which TD report layout a TDX quote carries.</summary>
public enum TdReportVersion
{
    /// <summary>TDX 1.0 TD report body, 584 bytes.</summary>
    V10,

    /// <summary>TDX 1.5 TD report body, 648 bytes (adds TEE_TCB_SVN2 and MRSERVICETD).</summary>
    V15,
}
