using System.Security.Cryptography.X509Certificates;
using Morphisms.Attestation.Verify;

namespace Morphisms.Attestation.Collateral;

/// <summary>
/// The outcome of checking DCAP collateral (see <c>CollateralVerifier</c>): the parsed items whose
/// signatures verified. An item is null when it was missing, malformed, not signed by a trusted key
/// or meant for the other TEE; an item outside its validity window is still present (it is authentic,
/// and showing what it says helps) but the check log holds an "expired" failure for it.
/// </summary>
public sealed record VerifiedCollateral
{
    /// <summary>The TEE the collateral was checked for.</summary>
    public required TeeType Tee { get; init; }

    /// <summary>TCB info whose signature verified, or null.</summary>
    public TcbInfo? TcbInfo { get; init; }

    /// <summary>QE (SGX) or TD QE (TDX) identity whose signature verified, or null.</summary>
    public EnclaveIdentity? QeIdentity { get; init; }

    /// <summary>
    /// The parsed PCK CRL, or null. Its signature is not checked here: it is made by the PCK CA in the
    /// quote's certificate chain, which the quote verifier checks it against.
    /// </summary>
    public CertificateRevocationList? PckCrl { get; init; }

    /// <summary>The root CA CRL, present only when a trusted Intel root signed it.</summary>
    public CertificateRevocationList? RootCaCrl { get; init; }

    /// <summary>The TCB-signing certificate that verified the TCB info, if any.</summary>
    public X509Certificate2? TcbInfoSigner { get; init; }

    /// <summary>The TCB-signing certificate that verified the QE identity, if any.</summary>
    public X509Certificate2? QeIdentitySigner { get; init; }

    /// <summary>True when a simulated Intel root vouched for the collateral: it proves nothing about real hardware.</summary>
    public bool Simulated { get; init; }
}
