using System.Net;
using System.Security.Cryptography.X509Certificates;

namespace Morphisms.Attestation.Collateral;

/// <summary>
/// Fetches DCAP collateral from Intel PCS (API v4) or a PCCS that mirrors it: TCB info, QE or TD QE
/// identity, the PCK CRL and the root CA CRL, with the TCB-signing chain from the response headers.
/// Nothing fetched is trusted here — <c>CollateralVerifier</c> checks every signature — but a signature
/// does not make a document current or prove one is absent: whoever answers in place of PCS can replay
/// an older document Intel signed (each stays valid for about 30 days, so a TCB info from before a TCB
/// recovery or a PCK CRL from before a revocation) or answer 404, which leaves the item missing. Reach
/// PCS or a PCCS over HTTPS (plain HTTP only on loopback). Wrap it in a
/// <see cref="CachingCollateralSource"/>: Intel rate-limits PCS.
/// </summary>
public sealed class IntelPcsCollateralSource : ICollateralSource
{
    private static readonly string[] TcbChainHeaders = ["TCB-Info-Issuer-Chain", "SGX-TCB-Info-Issuer-Chain"];
    private const string IdentityChainHeader = "SGX-Enclave-Identity-Issuer-Chain";

    private readonly HttpClient _http;
    private readonly IntelPcsOptions _options;

    /// <summary>Uses <paramref name="http"/> for every request (tests pass one over a fake handler).</summary>
    public IntelPcsCollateralSource(HttpClient http, IntelPcsOptions? options = null)
    {
        _http = http ?? throw new ArgumentNullException(nameof(http));
        _options = options ?? new IntelPcsOptions();
    }

    /// <inheritdoc />
    /// <exception cref="HttpRequestException">PCS answered with an error other than 404, or the connection failed.</exception>
    /// <exception cref="EvidenceFormatException">PCS answered with something that is not collateral; the message names the URL.</exception>
    public async ValueTask<DcapCollateral?> GetDcapCollateralAsync(DcapCollateralRequest request, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(request);
        if (request.Tee is not (TeeType.Sgx or TeeType.Tdx))
        {
            throw new ArgumentException("DCAP collateral exists for SGX and TDX only", nameof(request));
        }

        var fmspc = request.Fmspc.Trim();
        if (fmspc.Length != 12 || !fmspc.All(char.IsAsciiHexDigit))
        {
            throw new ArgumentException($"FMSPC must be 12 hex digits, got '{request.Fmspc}'", nameof(request));
        }

        var tee = request.Tee == TeeType.Tdx ? "tdx" : "sgx";
        var update = _options.Update is null ? "" : $"update={Uri.EscapeDataString(_options.Update)}";
        var tcbUri = Relative($"{tee}/certification/v4/tcb?fmspc={fmspc.ToUpperInvariant()}{(update.Length > 0 ? "&" + update : "")}");
        var qeUri = Relative($"{tee}/certification/v4/qe/identity{(update.Length > 0 ? "?" + update : "")}");
        var ca = request.CaType == PckCaType.Processor ? "processor" : "platform";
        var pckUri = Relative($"sgx/certification/v4/pckcrl?ca={ca}&encoding=der");

        var tcbTask = FetchAsync(tcbUri, cancellationToken);
        var qeTask = FetchAsync(qeUri, cancellationToken);
        var pckTask = FetchAsync(pckUri, cancellationToken);
        var rootTask = _options.RootCaCrlAddress is { } rootUri ? FetchAsync(rootUri, cancellationToken) : Task.FromResult<Fetched?>(null);
        await Task.WhenAll(tcbTask, qeTask, pckTask, rootTask).ConfigureAwait(false);
        var (tcb, qe, pck, root) = (tcbTask.Result, qeTask.Result, pckTask.Result, rootTask.Result);

        var certificates = new List<X509Certificate2>();
        if (tcb is not null)
        {
            certificates.AddRange(ChainFrom(tcb, TcbChainHeaders));
        }

        if (qe is not null)
        {
            certificates.AddRange(ChainFrom(qe, [IdentityChainHeader]));
        }

        return new DcapCollateral
        {
            TcbInfo = tcb is null ? null : Named(tcb.Uri, () => IntelCollateralDocument.Parse(tcb.Body, CollateralDocumentKind.TcbInfo)),
            QeIdentity = qe is null ? null : Named(qe.Uri, () => IntelCollateralDocument.Parse(qe.Body, CollateralDocumentKind.EnclaveIdentity)),
            PckCrl = pck is null ? null : Named(pck.Uri, () => CollateralEncoding.ParseCrl(CollateralEncoding.DecodeFile(pck.Body, "PCK CRL"), "PCK CRL").RawData),
            RootCaCrl = root is null ? null : Named(root.Uri, () => CollateralEncoding.ParseCrl(CollateralEncoding.DecodeFile(root.Body, "root CA CRL"), "root CA CRL").RawData),
            TcbSigningCertificates = [.. certificates.DistinctBy(c => c.Thumbprint)],
            Origin = _options.BaseAddress.ToString(),
        };
    }

    private Uri Relative(string pathAndQuery) => new(_options.BaseAddress, pathAndQuery);

    /// <summary>
    /// Returns null for 404: PCS says "no such FMSPC" that way, and the verifier then names the missing item. A caller
    /// that also takes collateral from elsewhere must not fill that gap unchecked (the KMS refuses the login instead).
    /// </summary>
    private async Task<Fetched?> FetchAsync(Uri uri, CancellationToken cancellationToken)
    {
        using var response = await _http.GetAsync(uri, HttpCompletionOption.ResponseHeadersRead, cancellationToken).ConfigureAwait(false);
        if (response.StatusCode == HttpStatusCode.NotFound)
        {
            return null;
        }

        if (!response.IsSuccessStatusCode)
        {
            throw new HttpRequestException($"collateral: {uri} answered {(int)response.StatusCode} {response.ReasonPhrase}", null, response.StatusCode);
        }

        if (response.Content.Headers.ContentLength > _options.MaxResponseBytes)
        {
            throw new EvidenceFormatException(uri.ToString(), $"response of {response.Content.Headers.ContentLength} bytes exceeds the {_options.MaxResponseBytes}-byte limit");
        }

        using var stream = await response.Content.ReadAsStreamAsync(cancellationToken).ConfigureAwait(false);
        using var buffer = new MemoryStream();
        var chunk = new byte[16 * 1024];
        int read;
        while ((read = await stream.ReadAsync(chunk, cancellationToken).ConfigureAwait(false)) > 0)
        {
            if (buffer.Length + read > _options.MaxResponseBytes)
            {
                throw new EvidenceFormatException(uri.ToString(), $"response exceeds the {_options.MaxResponseBytes}-byte limit");
            }

            buffer.Write(chunk, 0, read);
        }

        var headers = response.Headers.ToDictionary(h => h.Key, h => string.Join(",", h.Value), StringComparer.OrdinalIgnoreCase);
        return new Fetched(uri, buffer.ToArray(), headers);
    }

    private static IEnumerable<X509Certificate2> ChainFrom(Fetched fetched, string[] headerNames)
    {
        foreach (var name in headerNames)
        {
            if (fetched.Headers.TryGetValue(name, out var value))
            {
                // PCS URL-encodes the PEM chain in the header; ParsePemCertificates decodes it.
                return Named(fetched.Uri, () => CollateralEncoding.ParsePemCertificates(value, name));
            }
        }

        return [];
    }

    private static T Named<T>(Uri uri, Func<T> read)
    {
        try
        {
            return read();
        }
        catch (EvidenceFormatException e)
        {
            throw new EvidenceFormatException(uri.ToString(), e.Message);
        }
    }

    private sealed record Fetched(Uri Uri, byte[] Body, IReadOnlyDictionary<string, string> Headers);
}
