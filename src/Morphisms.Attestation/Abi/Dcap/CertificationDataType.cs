namespace Morphisms.Attestation.Abi.Dcap;

/// <summary>The certification data types of the DCAP quote format.</summary>
public enum CertificationDataType : ushort
{
    /// <summary>PPID in clear text.</summary>
    PpidCleartext = 1,

    /// <summary>PPID encrypted with RSA-2048-OAEP.</summary>
    PpidRsa2048 = 2,

    /// <summary>PPID encrypted with RSA-3072-OAEP.</summary>
    PpidRsa3072 = 3,

    /// <summary>PCK leaf certificate only.</summary>
    PckCertificate = 4,

    /// <summary>PCK certificate chain, PEM (leaf, PCK CA, root).</summary>
    PckCertificateChain = 5,

    /// <summary>QE report certification data (v4/v5): QE report, its signature, QE auth data and nested certification data.</summary>
    QeReportCertificationData = 6,

    /// <summary>Platform manifest.</summary>
    PlatformManifest = 7,
}
