using System.Security.Cryptography.X509Certificates;

namespace Morphisms.Attestation.Collateral;

/// <summary>
/// A signed Intel collateral document: the exact bytes of the <c>tcbInfo</c> or <c>enclaveIdentity</c>
/// JSON value as Intel served them (the signature covers those bytes, not a re-serialisation), and
/// the ECDSA P-256 signature (r‖s, 64 bytes) by the Intel SGX TCB Signing key.
/// </summary>
/// <param name="Body">Exact UTF-8 bytes of the signed JSON value.</param>
/// <param name="Signature">Raw r‖s signature, 64 bytes.</param>
public sealed record SignedCollateralJson(byte[] Body, byte[] Signature);

/// <summary>Which Intel PCK CA issued the PCK certificate (selects the PCK CRL).</summary>
public enum PckCaType
{
    /// <summary>Intel SGX PCK Platform CA.</summary>
    Platform,

    /// <summary>Intel SGX PCK Processor CA.</summary>
    Processor,
}

/// <summary>
/// Everything Intel publishes that a DCAP verifier needs besides the quote: TCB info for the
/// platform's FMSPC, the QE (or TD QE) identity, the CRLs, and the TCB-signing certificates.
/// Any part may be missing; the verifier then fails with a reason naming the missing item.
/// </summary>
public sealed record DcapCollateral
{
    /// <summary>Signed TCB info (SGX or TDX, v2 or v3).</summary>
    public SignedCollateralJson? TcbInfo { get; init; }

    /// <summary>Signed QE identity (SGX) or TD QE identity (TDX).</summary>
    public SignedCollateralJson? QeIdentity { get; init; }

    /// <summary>TCB-signing certificates supplied with the collateral (issuer chains); verified against the trusted Intel root before use.</summary>
    public IReadOnlyList<X509Certificate2> TcbSigningCertificates { get; init; } = [];

    /// <summary>DER CRL of the PCK CA that issued the PCK certificate.</summary>
    public byte[]? PckCrl { get; init; }

    /// <summary>DER CRL of the Intel SGX Root CA.</summary>
    public byte[]? RootCaCrl { get; init; }

    /// <summary>Where this collateral came from (file or URL), for messages.</summary>
    public string? Origin { get; init; }
}

/// <summary>What a verifier asks a collateral source for.</summary>
/// <param name="Tee">SGX or TDX (selects SGX vs TDX TCB info and QE vs TD QE identity).</param>
/// <param name="Fmspc">FMSPC from the PCK certificate, 12 hex digits (case-insensitive).</param>
/// <param name="CaType">Which PCK CA issued the PCK certificate.</param>
public sealed record DcapCollateralRequest(TeeType Tee, string Fmspc, PckCaType CaType);

/// <summary>
/// Supplies DCAP collateral: an offline store (a directory or one bundle file) in tests and
/// air-gapped sites, or a cached online source (Intel PCS / a PCCS) in production.
/// </summary>
public interface ICollateralSource
{
    /// <summary>Returns the collateral for the request, or null when this source has none.</summary>
    ValueTask<DcapCollateral?> GetDcapCollateralAsync(DcapCollateralRequest request, CancellationToken cancellationToken = default);
}
