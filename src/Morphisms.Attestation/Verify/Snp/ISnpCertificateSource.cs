using System.Security.Cryptography.X509Certificates;
using Morphisms.Attestation.Abi.Snp;

namespace Morphisms.Attestation.Verify.Snp;

/// <summary>
/// Where AMD endorsement material comes from when the evidence does not carry it: AMD's Key
/// Distribution Service (<see cref="AmdKdsCertificateSource"/>), usually behind
/// <see cref="CachingSnpCertificateSource"/>. Everything fetched is still verified against the trust anchors.
/// </summary>
public interface ISnpCertificateSource
{
    /// <summary>Fetches the VCEK for a chip at a TCB.</summary>
    /// <param name="product">Product line (Milan, Genoa, Turin).</param>
    /// <param name="chipId">The report's CHIP_ID (64 bytes; Turin uses the first 8).</param>
    /// <param name="reportedTcb">The report's REPORTED_TCB.</param>
    /// <param name="cancellationToken">Cancels the request.</param>
    Task<X509Certificate2> GetVcekAsync(string product, ReadOnlyMemory<byte> chipId, TcbVersion reportedTcb, CancellationToken cancellationToken = default);

    /// <summary>Fetches the intermediate and root of a product: ASK (or ASVK for VLEKs) then ARK.</summary>
    Task<IReadOnlyList<X509Certificate2>> GetCertificateChainAsync(string product, SnpSigningKey signer, CancellationToken cancellationToken = default);

    /// <summary>Fetches the product's CRL (signed by the ARK).</summary>
    Task<CertificateRevocationList> GetCrlAsync(string product, SnpSigningKey signer, CancellationToken cancellationToken = default);
}
