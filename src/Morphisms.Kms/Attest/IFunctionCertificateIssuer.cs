using System.Security.Cryptography.X509Certificates;
using Morphisms.Attestation;
using Morphisms.Kms.Functions;

namespace Morphisms.Kms.Attest;

/// <summary>
/// Signs an attested instance's CSR at login. The PKI engine implements it (<c>Pki.FunctionCertificateIssuer</c>);
/// <see cref="NoCertificateIssuer"/> answers with an empty certificate and chain.
/// </summary>
internal interface IFunctionCertificateIssuer
{
    /// <summary>
    /// The certificate for <paramref name="request"/>, or an empty one when no CA can issue yet. Its record is added to
    /// <paramref name="writes"/>: the certificate exists for the KMS (revocable, listed) once the caller commits them.
    /// </summary>
    Task<IssuedCertificate> IssueAsync(FunctionCertificateRequest request, Barrier.WriteSet writes, CancellationToken ct);
}

/// <summary>What the issuer needs: who attested, as what, and the CSR of the key that lives in the TEE.</summary>
/// <param name="State">The unsealed state (the CA key lives behind its barrier).</param>
/// <param name="Function">The function.</param>
/// <param name="Revision">The revision whose reference values matched.</param>
/// <param name="Csr">The verified CSR.</param>
/// <param name="Attestation">The attestation result (TEE type, measurement, simulated).</param>
/// <param name="EvidenceSha256">SHA-256 of the evidence, for the certificate's identity extension.</param>
internal sealed record FunctionCertificateRequest(
    UnsealedState State, FunctionRecord Function, int Revision, CertificateRequest Csr, AttestationResult Attestation, byte[] EvidenceSha256);

/// <summary>A signed certificate and its CA chain, PEM.</summary>
/// <param name="Certificate">The leaf, or empty.</param>
/// <param name="CaChain">Issuer certificates up to the root.</param>
/// <param name="Serial">The leaf's serial number, lower-case hex without separators (the retirement index's key), or empty.</param>
/// <param name="NotAfter">The leaf's expiry (in the retirement index's key, so expired entries are pruned from a listing).</param>
internal sealed record IssuedCertificate(string Certificate, IReadOnlyList<string> CaChain, string Serial = "", DateTimeOffset NotAfter = default);

/// <summary>The issuer until the PKI engine exists: no certificate.</summary>
internal sealed class NoCertificateIssuer : IFunctionCertificateIssuer
{
    /// <inheritdoc />
    public Task<IssuedCertificate> IssueAsync(FunctionCertificateRequest request, Barrier.WriteSet writes, CancellationToken ct) =>
        Task.FromResult(new IssuedCertificate("", []));
}
