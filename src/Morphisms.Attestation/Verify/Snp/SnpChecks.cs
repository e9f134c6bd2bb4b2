namespace Morphisms.Attestation.Verify.Snp;

/// <summary>
/// Stable names of the authenticity checks <see cref="SnpVerifier"/> records in a <see cref="CheckLog"/>.
/// Callers and logs match on these, so they never change meaning.
/// </summary>
public static class SnpChecks
{
    /// <summary>The report's ECDSA P-384 signature verifies with the VCEK/VLEK key.</summary>
    public const string Signature = "snp.signature";

    /// <summary>The certificate kind (VCEK or VLEK) matches the report's SIGNING_KEY.</summary>
    public const string SigningKey = "snp.signing_key";

    /// <summary>VCEK → ASK → ARK or VLEK → ASVK → ARK, ending at a trusted ARK.</summary>
    public const string Chain = "snp.chain";

    /// <summary>Every certificate of the chain is valid at the evaluation time.</summary>
    public const string CertificateValidity = "snp.cert_validity";

    /// <summary>The AMD extensions of the VCEK/VLEK are present and well-formed.</summary>
    public const string KeyExtensions = "snp.vcek_extensions";

    /// <summary>The TCB the VCEK/VLEK certifies equals the report's REPORTED_TCB.</summary>
    public const string KeyTcb = "snp.vcek_tcb";

    /// <summary>The VCEK's hwID equals the report's CHIP_ID.</summary>
    public const string ChipId = "snp.chip_id";

    /// <summary>The product named by the CPUID, the certificate and the options agree.</summary>
    public const string Product = "snp.product";

    /// <summary>The AMD CRL is signed by the ARK, current, and lists neither the intermediate nor the VCEK/VLEK.</summary>
    public const string Crl = "snp.crl";
}
