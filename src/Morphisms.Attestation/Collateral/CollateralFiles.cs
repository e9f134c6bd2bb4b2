namespace Morphisms.Attestation.Collateral;

/// <summary>
/// Explicit collateral files, for when a directory holds several platforms' or several dates'
/// collateral and the automatic choice is not the one wanted. Every path is optional; a missing item
/// is reported by the verifier by name.
/// </summary>
public sealed record CollateralFiles
{
    /// <summary>Intel TCB info document (<c>{"tcbInfo":…,"signature":…}</c>).</summary>
    public string? TcbInfo { get; init; }

    /// <summary>Intel QE or TD QE identity document (<c>{"enclaveIdentity":…,"signature":…}</c>).</summary>
    public string? QeIdentity { get; init; }

    /// <summary>CRL of the PCK CA that issued the PCK certificate (DER, PEM or hex).</summary>
    public string? PckCrl { get; init; }

    /// <summary>CRL of the Intel SGX Root CA (DER, PEM or hex).</summary>
    public string? RootCaCrl { get; init; }

    /// <summary>TCB-signing certificate files (PEM, possibly several per file, or DER).</summary>
    public IReadOnlyList<string> SigningCertificates { get; init; } = [];
}
