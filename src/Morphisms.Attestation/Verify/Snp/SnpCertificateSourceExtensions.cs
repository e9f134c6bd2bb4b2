using Morphisms.Attestation.Abi.Snp;

namespace Morphisms.Attestation.Verify.Snp;

/// <summary>Assembles <see cref="SnpEndorsements"/> for a report from an <see cref="ISnpCertificateSource"/>.</summary>
public static class SnpCertificateSourceExtensions
{
    /// <summary>
    /// Fetches the VCEK, chain and (optionally) CRL a VCEK-signed report needs. VLEKs are only
    /// available to the cloud provider they were issued to, so they must come with the evidence.
    /// </summary>
    /// <param name="source">Where to fetch from.</param>
    /// <param name="report">The report to endorse.</param>
    /// <param name="product">The product line; needed for version 2 reports, which do not carry CPUID.</param>
    /// <param name="includeCrl">Also fetch the product's CRL.</param>
    /// <param name="cancellationToken">Cancels the requests.</param>
    /// <exception cref="NotSupportedException">The report is signed by a VLEK or not signed.</exception>
    /// <exception cref="ArgumentException">The product is unknown or CHIP_ID is masked.</exception>
    public static async Task<SnpEndorsements> GetEndorsementsAsync(this ISnpCertificateSource source, SnpReport report, string? product = null, bool includeCrl = false, CancellationToken cancellationToken = default)
    {
        if (report.SignerInfo.SigningKey != SnpSigningKey.Vcek)
        {
            throw new NotSupportedException($"only VCEKs can be fetched from AMD KDS; this report is signed by {report.SignerInfo.SigningKey}");
        }

        var line = product ?? report.Product
            ?? throw new ArgumentException("the report does not name its product (version 2); pass it explicitly", nameof(product));
        var vcek = await source.GetVcekAsync(line, report.ChipId, report.ReportedTcb, cancellationToken).ConfigureAwait(false);
        var chain = await source.GetCertificateChainAsync(line, SnpSigningKey.Vcek, cancellationToken).ConfigureAwait(false);
        var crl = includeCrl ? await source.GetCrlAsync(line, SnpSigningKey.Vcek, cancellationToken).ConfigureAwait(false) : null;
        return new SnpEndorsements(vcek, chain, crl);
    }
}
