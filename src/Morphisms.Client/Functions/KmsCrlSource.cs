using System.Net.Security;
using System.Security.Authentication;
using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;
using System.Text.Json;
using Morphisms.Attestation;
using Morphisms.Attestation.Verify;
using Morphisms.Client.Trust;

namespace Morphisms.Client.Functions;

/// <summary>Where <see cref="FunctionCrlCache"/> gets the CRL of a function certificate's issuing CA.</summary>
internal interface IFunctionCrlSource
{
    /// <summary>Names the source in a refusal (<c>the KMS https://…</c>).</summary>
    string Name { get; }

    /// <summary>The CRL (DER or PEM) of <paramref name="issuingCa"/>; synchronous, as the TLS callback it serves is.</summary>
    /// <exception cref="CrlFetchException">No CRL could be had; the message says why.</exception>
    byte[] Fetch(X509Certificate2 issuingCa);
}

/// <summary>Why no CRL could be fetched, said for a person.</summary>
internal sealed class CrlFetchException(string message) : Exception(message);

/// <summary>
/// The CRLs of the KMS a <see cref="KmsTrustRecord"/> pins, read from the <c>pki/</c> mount that signs function
/// certificates at attest-login, as Vault serves them without a token: <c>GET /v1/pki/crl/pem</c> (the default issuer's)
/// and, for a certificate of an issuer rotated out by <c>intermediate/rotate</c> and not yet expired,
/// <c>LIST /v1/pki/issuers</c> then <c>GET /v1/pki/issuer/ID/crl/pem</c>. The TLS connection must present the KMS TLS
/// key the record's attestation bound (<see cref="KmsTrustRecord.TlsSpkiSha256"/>) and name the host; a redirect is not
/// followed. Which CRL is the issuing CA's is told by its signature; <see cref="FunctionCrlCache"/> checks it again, with
/// its freshness, before using it.
/// </summary>
internal sealed class KmsCrlSource : IFunctionCrlSource
{
    /// <summary>A CRL lists revocations of the last certificate lifetime plus 72 h: far below this.</summary>
    private const int MaxResponseBytes = 8 * 1024 * 1024;

    private readonly KmsTrustRecord _trust;
    private readonly Uri _base;
    private readonly TimeSpan _timeout;

    public KmsCrlSource(KmsTrustRecord trust, TimeSpan timeout)
    {
        _trust = trust;
        _base = new Uri(trust.KmsUrl.TrimEnd('/') + "/");
        _timeout = timeout;
    }

    public string Name => $"the KMS {_trust.KmsUrl}";

    public byte[] Fetch(X509Certificate2 issuingCa)
    {
        string? tlsFailure = null;
        using var handler = new SocketsHttpHandler
        {
            // Standby nodes answer 307 to the active node, whose address comes from storage the KMS does not trust.
            AllowAutoRedirect = false,
            ConnectTimeout = _timeout,
            UseProxy = false,
        };
        handler.SslOptions.RemoteCertificateValidationCallback = (_, certificate, _, errors) =>
        {
            tlsFailure = PinFailure(certificate, errors);
            return tlsFailure is null;
        };
        using var http = new HttpClient(handler) { Timeout = _timeout, MaxResponseContentBufferSize = MaxResponseBytes };

        var defaultCrl = Get(http, "v1/pki/crl/pem", () => tlsFailure);
        if (SignedBy(defaultCrl, issuingCa))
        {
            return defaultCrl;
        }

        // A certificate of an issuer that intermediate/rotate retired lives on (at most the certificate TTL): its CRL is
        // that issuer's, which Vault serves by issuer ID only.
        var list = Json(Get(http, "v1/pki/issuers?list=true", () => tlsFailure), "LIST pki/issuers");
        var defaultId = list.TryGetProperty("default", out var d) && d.ValueKind == JsonValueKind.String ? d.GetString() : null;
        var ids = list.TryGetProperty("keys", out var keys) && keys.ValueKind == JsonValueKind.Array
            ? [.. keys.EnumerateArray().Where(k => k.ValueKind == JsonValueKind.String).Select(k => k.GetString()!)]
            : new List<string>();
        foreach (var id in ids.Where(i => i != defaultId && i.Length is > 0 and <= 64 && i.All(c => char.IsAsciiLetterOrDigit(c) || c is '-' or '_')))
        {
            var crl = Get(http, $"v1/pki/issuer/{id}/crl/pem", () => tlsFailure);
            if (SignedBy(crl, issuingCa))
            {
                return crl;
            }
        }

        throw new CrlFetchException($"it serves no CRL signed by this CA (the default issuer's and {ids.Count(i => i != defaultId)} other issuers' were checked)");
    }

    /// <summary>Why the KMS's TLS certificate is not the attested one, or null: the record's TLS key, for the host asked for.</summary>
    private string? PinFailure(X509Certificate? certificate, SslPolicyErrors errors)
    {
        if (certificate is null)
        {
            return "it presented no TLS certificate";
        }

        // The pin stands in for the trust store, not for the host name check.
        if ((errors & (SslPolicyErrors.RemoteCertificateNameMismatch | SslPolicyErrors.RemoteCertificateNotAvailable)) != 0)
        {
            return $"its TLS certificate does not match the host name ({errors})";
        }

        using var presented = X509CertificateLoader.LoadCertificate(certificate.GetRawCertData());
        var key = Convert.ToHexStringLower(SHA256.HashData(presented.PublicKey.ExportSubjectPublicKeyInfo()));
        return string.Equals(key, _trust.TlsSpkiSha256, StringComparison.OrdinalIgnoreCase)
            ? null
            : $"its TLS key (SPKI sha256 {key}) is not the one `morph kms trust` attested ({_trust.TlsSpkiSha256}): trust the KMS again if it changed its TLS key";
    }

    private byte[] Get(HttpClient http, string path, Func<string?> tlsFailure)
    {
        var url = new Uri(_base, path);
        try
        {
            using var request = new HttpRequestMessage(HttpMethod.Get, url);
            using var response = http.Send(request, HttpCompletionOption.ResponseContentRead);
            using var stream = response.Content.ReadAsStream();
            using var body = new MemoryStream();
            stream.CopyTo(body);
            var status = (int)response.StatusCode;
            if (status is >= 300 and < 400)
            {
                throw new CrlFetchException($"GET {url.AbsolutePath} was redirected ({status}{(response.Headers.Location is { } l ? $" to {l}" : string.Empty)}), "
                    + "which is not followed: an HA standby redirects to its active node, so trust and use the active node's address");
            }

            if (status != 200)
            {
                throw new CrlFetchException($"GET {url.AbsolutePath} answered {status}{Errors(body.ToArray())}");
            }

            return body.ToArray();
        }
        catch (HttpRequestException e) when (tlsFailure() is { } pin && e.InnerException is AuthenticationException)
        {
            throw new CrlFetchException($"its TLS was refused: {pin}");
        }
        catch (HttpRequestException e)
        {
            throw new CrlFetchException($"it could not be reached ({Innermost(e).Message})");
        }
        catch (TaskCanceledException)
        {
            throw new CrlFetchException($"it did not answer GET {url.AbsolutePath} within {_timeout.TotalSeconds:0.#} s");
        }
        catch (IOException e)
        {
            throw new CrlFetchException($"reading its answer failed ({e.Message})");
        }
    }

    private static bool SignedBy(byte[] crlBytes, X509Certificate2 issuingCa)
    {
        try
        {
            return CertificateRevocationList.Parse(crlBytes).VerifySignature(issuingCa);
        }
        catch (EvidenceFormatException)
        {
            return false;
        }
    }

    private static JsonElement Json(byte[] body, string what)
    {
        try
        {
            using var document = JsonDocument.Parse(body);
            return document.RootElement.GetProperty("data").Clone();
        }
        catch (Exception e) when (e is JsonException or KeyNotFoundException or InvalidOperationException)
        {
            throw new CrlFetchException($"its answer to {what} is not Vault's JSON ({e.Message})");
        }
    }

    /// <summary>The <c>errors</c> of a Vault error body, as <c>: a; b</c>, or nothing.</summary>
    private static string Errors(byte[] body)
    {
        try
        {
            using var document = JsonDocument.Parse(body);
            return document.RootElement.TryGetProperty("errors", out var errors) && errors.ValueKind == JsonValueKind.Array
                ? ": " + string.Join("; ", errors.EnumerateArray().Select(e => e.ToString()))
                : string.Empty;
        }
        catch (JsonException)
        {
            return string.Empty;
        }
    }

    private static Exception Innermost(Exception e) => e.InnerException is { } inner ? Innermost(inner) : e;
}
