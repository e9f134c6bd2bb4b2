using System.Net;
using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;
using System.Text;
using Morphisms.Attestation.Abi.Snp;

namespace Morphisms.Attestation.Verify.Snp;

/// <summary>
/// Fetches VCEKs, certificate chains and CRLs from AMD's Key Distribution Service over HTTPS.
/// AMD rate-limits the KDS, so wrap this in <see cref="CachingSnpCertificateSource"/>. Responses are
/// parsed but not trusted: the verifier checks them against its anchors like any other endorsement.
/// </summary>
public sealed class AmdKdsCertificateSource : ISnpCertificateSource
{
    private const int MaxResponseBytes = 1 << 20;

    private readonly HttpClient _http;
    private readonly Uri _base;

    /// <summary>Creates a source using <paramref name="http"/> against <paramref name="baseUri"/> (AMD's KDS by default).</summary>
    public AmdKdsCertificateSource(HttpClient http, Uri? baseUri = null)
    {
        _http = http;
        _base = baseUri ?? AmdKdsUrls.DefaultBase;
    }

    /// <inheritdoc />
    public async Task<X509Certificate2> GetVcekAsync(string product, ReadOnlyMemory<byte> chipId, TcbVersion reportedTcb, CancellationToken cancellationToken = default)
    {
        var url = AmdKdsUrls.Vcek(product, chipId.Span, reportedTcb, _base);
        var body = await GetAsync(url, cancellationToken).ConfigureAwait(false);
        try
        {
            return UntrustedCertificate.Load(body);
        }
        catch (CryptographicException e)
        {
            throw new EvidenceFormatException("vcek", $"AMD KDS returned something that is not a DER certificate ({e.Message})");
        }
    }

    /// <inheritdoc />
    public async Task<IReadOnlyList<X509Certificate2>> GetCertificateChainAsync(string product, SnpSigningKey signer, CancellationToken cancellationToken = default)
    {
        var body = await GetAsync(AmdKdsUrls.CertificateChain(product, signer, _base), cancellationToken).ConfigureAwait(false);
        var collection = new X509Certificate2Collection();
        try
        {
            collection.ImportFromPem(Encoding.ASCII.GetString(body));
        }
        catch (CryptographicException e)
        {
            throw new EvidenceFormatException("cert_chain", $"AMD KDS returned an unreadable PEM chain ({e.Message})");
        }

        if (collection.Count != 2)
        {
            throw new EvidenceFormatException("cert_chain", $"expected 2 certificates (intermediate, ARK), got {collection.Count}");
        }

        return [.. collection];
    }

    /// <inheritdoc />
    public async Task<CertificateRevocationList> GetCrlAsync(string product, SnpSigningKey signer, CancellationToken cancellationToken = default)
    {
        var body = await GetAsync(AmdKdsUrls.Crl(product, signer, _base), cancellationToken).ConfigureAwait(false);
        return CertificateRevocationList.Parse(body);
    }

    private async Task<byte[]> GetAsync(Uri url, CancellationToken cancellationToken)
    {
        using var response = await _http.GetAsync(url, HttpCompletionOption.ResponseHeadersRead, cancellationToken).ConfigureAwait(false);
        if (response.StatusCode == HttpStatusCode.TooManyRequests)
        {
            throw new HttpRequestException($"AMD KDS rate limit hit for {url.AbsolutePath}; retry later", null, response.StatusCode);
        }

        if (!response.IsSuccessStatusCode)
        {
            throw new HttpRequestException($"AMD KDS answered {(int)response.StatusCode} for {url.AbsolutePath}", null, response.StatusCode);
        }

        if (response.Content.Headers.ContentLength > MaxResponseBytes)
        {
            throw new HttpRequestException($"AMD KDS response for {url.AbsolutePath} is larger than {MaxResponseBytes} bytes");
        }

        await using var stream = await response.Content.ReadAsStreamAsync(cancellationToken).ConfigureAwait(false);
        using var buffer = new MemoryStream();
        var chunk = new byte[16 * 1024];
        int read;
        while ((read = await stream.ReadAsync(chunk, cancellationToken).ConfigureAwait(false)) > 0)
        {
            if (buffer.Length + read > MaxResponseBytes)
            {
                throw new HttpRequestException($"AMD KDS response for {url.AbsolutePath} is larger than {MaxResponseBytes} bytes");
            }

            buffer.Write(chunk, 0, read);
        }

        return buffer.ToArray();
    }
}
