using System.Collections.Concurrent;
using System.Security.Authentication;
using System.Security.Cryptography.X509Certificates;
using System.Text.Json;
using Morphisms.Attestation;
using Morphisms.Attestation.Trust;
using Morphisms.Attestation.Verify;
using Morphisms.Client.Trust;

namespace Morphisms.Client.Functions;

/// <summary>Where <see cref="FunctionCrlCache"/> gets the CRL of a function certificate's issuing CA.</summary>
internal interface IFunctionCrlSource
{
    /// <summary>Names the source in a refusal (<c>the KMS https://…</c>).</summary>
    string Name { get; }

    /// <summary>
    /// The CRL (DER or PEM) of <paramref name="issuingCa"/>. Asynchronous, so that the handshakes waiting for it hold no
    /// thread it needs: the TLS callbacks that wait are synchronous and may fill the thread pool.
    /// </summary>
    /// <param name="issuingCa">The CA whose CRL is wanted.</param>
    /// <param name="cancellationToken">Cancelled when the whole fetch has taken <see cref="FunctionRevocationOptions.FetchTimeout"/>.</param>
    /// <exception cref="CrlFetchException">No CRL could be had (in time); the message says why.</exception>
    Task<byte[]> FetchAsync(X509Certificate2 issuingCa, CancellationToken cancellationToken);

    /// <summary>
    /// The CRL (DER or PEM) of the KMS's default issuer, the CA that signs new function certificates: fetched before a
    /// connection's handshake, when no issuing CA is known yet, to warm <see cref="FunctionCrlCache"/>. Not checked here:
    /// the handshake uses it only if it verifies as its issuing CA's.
    /// </summary>
    /// <param name="cancellationToken">Cancelled when the fetch has taken <see cref="FunctionRevocationOptions.FetchTimeout"/>.</param>
    /// <exception cref="CrlFetchException">No CRL could be had (in time); the message says why.</exception>
    Task<byte[]> FetchDefaultAsync(CancellationToken cancellationToken);
}

/// <summary>Why no CRL could be fetched, said for a person.</summary>
internal sealed class CrlFetchException(string message) : Exception(message);

/// <summary>
/// The CRLs of the KMS a <see cref="KmsTrustRecord"/> pins, read from the <c>pki/</c> mount that signs function
/// certificates at attest-login, as Vault serves them without a token: <c>GET /v1/pki/crl/pem</c> (the default issuer's)
/// and, for a certificate of an issuer rotated out by <c>intermediate/rotate</c> and not yet expired,
/// <c>LIST /v1/pki/issuers</c> then <c>GET /v1/pki/issuer/ID/crl/pem</c>. The TLS connection must present the KMS TLS
/// key the record's attestation bound (<see cref="KmsTrustRecord.TlsSpkiSha256"/>) and name the host. Which CRL is the
/// issuing CA's is told by its signature; <see cref="FunctionCrlCache"/> checks it again, with its freshness, before
/// using it: that is the integrity check, and the pin keeps a network attacker from serving an old CRL that still
/// verifies.
/// </summary>
/// <remarks>
/// An HA standby answers every request with a 307 to the active node. With a trust store
/// (<see cref="FunctionRevocationOptions.TrustStore"/>), a 307 or 308 is followed as <c>morph kms</c> follows it
/// (<see cref="KmsTlsPin"/>): at most <see cref="KmsTlsPin.MaxRedirects"/> times, to https only, to the same path and query
/// (only scheme, host and port change), and only to a server presenting a TLS key that a record of the store attests for
/// the same root CA; the <c>Location</c> comes from storage the KMS does not trust. Without a store no redirect is followed.
/// The requests to the record's own address go through one long-lived client whose TLS check is the record's key alone,
/// shared by every source for the same address, key and fetch timeout, so its connections are reused from one fetch to the
/// next, whichever handler fetches; a fetch that follows a redirect uses a client of its own, with the widened pin, disposed
/// when the fetch ends, so no connection let in by the store serves a later fetch. The whole fetch (every request and
/// redirect) has <see cref="FunctionRevocationOptions.FetchTimeout"/>, and fetches through one shared client run one at a
/// time (one pin reports one handshake's failure).
/// </remarks>
internal sealed class KmsCrlSource : IFunctionCrlSource
{
    /// <summary>A CRL lists revocations of the last certificate lifetime plus 72 h: far below this.</summary>
    private const int MaxResponseBytes = 8 * 1024 * 1024;

    private readonly KmsTrustRecord _trust;
    private readonly Uri _base;
    private readonly TimeSpan _timeout;
    private readonly KmsTrustStore? _store;

    // Every FunctionHttpHandler.Create makes a source, and a SocketsHttpHandler has nothing to dispose one with: a client per
    // source left its pooled KMS connection open after each handler made per call (as the load bench and morph invoke make
    // them). So the clients are shared per address, key and timeout, and never disposed: a handler disposed while a fetch
    // it started still runs (a background refresh) cannot end that fetch, and an idle client's connections close on their
    // own (PooledConnectionIdleTimeout). There are as many as the KMS keys and addresses this process has trusted.
    private static readonly ConcurrentDictionary<string, Pinned> Clients = new(StringComparer.Ordinal);

    private readonly Pinned _pinned;

    /// <summary>A source for <paramref name="trust"/>'s KMS; <paramref name="store"/>, when given, vouches for the nodes a standby redirects to.</summary>
    /// <param name="trust">The pinned KMS.</param>
    /// <param name="timeout">How long one whole fetch may take (<see cref="FunctionRevocationOptions.FetchTimeout"/>).</param>
    /// <param name="store">The trust store, or null (no redirect is then followed).</param>
    public KmsCrlSource(KmsTrustRecord trust, TimeSpan timeout, KmsTrustStore? store = null)
    {
        _trust = trust;
        _base = new Uri(trust.KmsUrl.TrimEnd('/') + "/");
        _timeout = timeout;
        _store = store;
        _pinned = Clients.GetOrAdd($"{_base.AbsoluteUri} {trust.TlsSpkiSha256.ToLowerInvariant()} {timeout.Ticks}", _ => new Pinned(trust, timeout));
    }

    public string Name => $"the KMS {_trust.KmsUrl}";

    public Task<byte[]> FetchAsync(X509Certificate2 issuingCa, CancellationToken cancellationToken) =>
        RunAsync(kms => FetchAsync(kms, issuingCa), cancellationToken);

    public Task<byte[]> FetchDefaultAsync(CancellationToken cancellationToken) =>
        RunAsync(kms => kms.GetAsync("v1/pki/crl/pem"), cancellationToken);

    /// <summary>Runs one fetch: alone on this source, under one time limit for all its requests and redirects.</summary>
    private async Task<byte[]> RunAsync(Func<Session, Task<byte[]>> fetch, CancellationToken cancellationToken)
    {
        // One limit for the whole fetch, however many requests and redirects it makes.
        using var limit = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        limit.CancelAfter(_timeout);
        try
        {
            await _pinned.OneAtATime.WaitAsync(limit.Token).ConfigureAwait(false);
        }
        catch (OperationCanceledException)
        {
            throw new CrlFetchException($"another fetch from it did not end within {Seconds(_timeout)}");
        }

        try
        {
            using var kms = new Session(this, limit.Token);
            return await fetch(kms).ConfigureAwait(false);
        }
        finally
        {
            _pinned.OneAtATime.Release();
        }
    }

    private static async Task<byte[]> FetchAsync(Session kms, X509Certificate2 issuingCa)
    {
        var defaultCrl = await kms.GetAsync("v1/pki/crl/pem").ConfigureAwait(false);
        if (SignedBy(defaultCrl, issuingCa))
        {
            return defaultCrl;
        }

        // A certificate of an issuer that intermediate/rotate retired lives on (at most the certificate TTL): its CRL is
        // that issuer's, which Vault serves by issuer ID only.
        var list = Json(await kms.GetAsync("v1/pki/issuers?list=true").ConfigureAwait(false), "LIST pki/issuers");
        var defaultId = list.TryGetProperty("default", out var d) && d.ValueKind == JsonValueKind.String ? d.GetString() : null;
        var ids = list.TryGetProperty("keys", out var keys) && keys.ValueKind == JsonValueKind.Array
            ? [.. keys.EnumerateArray().Where(k => k.ValueKind == JsonValueKind.String).Select(k => k.GetString()!)]
            : new List<string>();
        foreach (var id in ids.Where(i => i != defaultId && i.Length is > 0 and <= 64 && i.All(c => char.IsAsciiLetterOrDigit(c) || c is '-' or '_')))
        {
            var crl = await kms.GetAsync($"v1/pki/issuer/{id}/crl/pem").ConfigureAwait(false);
            if (SignedBy(crl, issuingCa))
            {
                return crl;
            }
        }

        throw new CrlFetchException($"it serves no CRL signed by this CA (the default issuer's and {ids.Count(i => i != defaultId)} other issuers' were checked)");
    }

    /// <summary>A client whose TLS check is <paramref name="pin"/>; the fetch's token, not the client, bounds a request.</summary>
    private static HttpClient Client(KmsTlsPin pin, TimeSpan connectTimeout)
    {
        var handler = new SocketsHttpHandler
        {
            // Standby nodes answer 307 to the active node, whose address comes from storage the KMS does not trust:
            // followed (or not) by GetAsync, under the pin.
            AllowAutoRedirect = false,
            ConnectTimeout = connectTimeout,
            UseProxy = false,
            PooledConnectionLifetime = TimeSpan.FromMinutes(5),
        };
        handler.SslOptions.RemoteCertificateValidationCallback = (_, certificate, _, errors) => pin.Validate(certificate, errors);
        return new HttpClient(handler) { Timeout = Timeout.InfiniteTimeSpan, MaxResponseContentBufferSize = MaxResponseBytes };
    }

    private static string Seconds(TimeSpan timeout) => $"{timeout.TotalSeconds:0.#} s";

    /// <summary>The long-lived client for one KMS address and key: its pooled connections were all let in by the record's key alone.</summary>
    private sealed class Pinned
    {
        public Pinned(KmsTrustRecord trust, TimeSpan timeout)
        {
            Pin = KmsTlsPin.Of(trust);
            Http = Client(Pin, timeout);
        }

        public KmsTlsPin Pin { get; }

        public HttpClient Http { get; }

        /// <summary>One fetch at a time, whichever source runs it: the pin reports its one handshake's failure.</summary>
        public SemaphoreSlim OneAtATime { get; } = new(1, 1);
    }

    /// <summary>The requests of one fetch: they run one after another, so one pin serves them all.</summary>
    private sealed class Session(KmsCrlSource source, CancellationToken cancellationToken) : IDisposable
    {
        private readonly KmsCrlSource _source = source;

        // Until a standby redirects, only the record's own key passes, as without a store, on the shared long-lived
        // client; the store's other nodes of this KMS are read, and let in, only for a redirect, on a client of this
        // fetch alone.
        private KmsTlsPin _pin = source._pinned.Pin;
        private HttpClient _http = source._pinned.Http;
        private HttpClient? _widened;

        public void Dispose() => _widened?.Dispose();

        /// <summary>The body of a 200 to GET <paramref name="path"/>, following a standby's redirects the pin allows.</summary>
        public async Task<byte[]> GetAsync(string path)
        {
            var target = new Uri(_source._base, path);
            Uri? from = null;
            var redirects = 0;
            while (true)
            {
                var (status, location, body) = await SendAsync(target, from).ConfigureAwait(false);
                if (status is 307 or 308 && location is not null)
                {
                    var next = Follow(status, target, location, redirects++);
                    from = target;
                    target = next;
                    continue;
                }

                if (status is >= 300 and < 400)
                {
                    throw new CrlFetchException($"GET {target.AbsolutePath} was redirected ({status}{(location is { } l ? $" to {l}" : string.Empty)}), which is not followed");
                }

                if (status != 200)
                {
                    throw new CrlFetchException($"GET {target.AbsolutePath}{(from is null ? string.Empty : $" at {Authority(target)}")} answered {status}{Errors(body)}");
                }

                return body;
            }
        }

        /// <summary>
        /// The next hop of the redirect from <paramref name="target"/> to <paramref name="location"/> after
        /// <paramref name="followed"/> others, when it may be followed (<see cref="KmsRedirect"/>'s rule, and a trust store
        /// to check the target against); widens the pin to the store's nodes.
        /// </summary>
        private Uri Follow(int status, Uri target, Uri location, int followed)
        {
            var refusal = KmsRedirect.Check(target, status, location, followed, out var checkedNext);
            var next = checkedNext!;
            var redirected = $"GET {target.AbsolutePath} was redirected ({status}) by {Authority(target)} to {next}";
            if (_source._store is not { } store)
            {
                throw new CrlFetchException($"{redirected}, which is not followed without a trust store to check the target against: an HA standby "
                    + $"redirects to its active node, so trust and use the active node's address (morph kms trust {Authority(next)})");
            }

            switch (refusal)
            {
                case KmsRedirectRefusal.NotHttps:
                    throw new CrlFetchException($"{redirected}: not followed, since plain http cannot show an attested TLS key; give the KMS nodes https --api-addr URLs");
                case KmsRedirectRefusal.AnotherRequest:
                    throw new CrlFetchException($"{redirected}: not followed, since it names another path than {target.PathAndQuery} (a standby redirects to the same path on the active node); check the nodes' --api-addr");
                case KmsRedirectRefusal.TooMany:
                    throw new CrlFetchException($"it redirected more than {KmsTlsPin.MaxRedirects} times (the last time to {next}): not followed");
            }

            if (_widened is null)
            {
                try
                {
                    _pin = KmsTlsPin.For(_source._trust, store.All());
                    _widened = _http = Client(_pin, _source._timeout);
                }
                catch (Exception e) when (e is InvalidDataException or IOException or UnauthorizedAccessException)
                {
                    throw new CrlFetchException($"{redirected}, which is not followed: the trust store that would say whether that is a node of this KMS cannot be read ({e.Message})");
                }
            }

            return next;
        }

        /// <summary>One request to <paramref name="target"/> (redirected there from <paramref name="from"/>, if not null).</summary>
        private async Task<(int Status, Uri? Location, byte[] Body)> SendAsync(Uri target, Uri? from)
        {
            try
            {
                _pin.Reset();
                using var request = new HttpRequestMessage(HttpMethod.Get, target);
                using var response = await _http.SendAsync(request, HttpCompletionOption.ResponseContentRead, cancellationToken).ConfigureAwait(false);
                var body = await response.Content.ReadAsByteArrayAsync(cancellationToken).ConfigureAwait(false);
                return ((int)response.StatusCode, response.Headers.Location, body);
            }
            catch (HttpRequestException e) when (_pin.LastFailure is { } refused && e.InnerException is AuthenticationException)
            {
                throw new CrlFetchException(from is null
                    ? $"its TLS was refused: {refused}"
                    : $"{Authority(from)} redirected GET {target.AbsolutePath} to {Authority(target)}, which is not a node of the KMS pinned for {_source._trust.KmsUrl}: "
                        + $"{refused}; not followed. If it is a node of this KMS, trust it by its address while it is active (morph kms trust {Authority(target)}) and retry");
            }
            catch (HttpRequestException e) when (e.HttpRequestError == HttpRequestError.ConfigurationLimitExceeded)
            {
                // The client's MaxResponseContentBufferSize: said as such, not as an unreachable KMS.
                throw new CrlFetchException($"{(from is null ? "its" : $"{Authority(target)}'s")} answer to GET {target.AbsolutePath} is larger than the "
                    + $"{MaxResponseBytes}-byte (8 MiB) limit, far above any CRL it should serve; not read further");
            }
            catch (HttpRequestException e)
            {
                throw new CrlFetchException(from is null
                    ? $"it could not be reached ({Innermost(e).Message})"
                    : $"{Authority(target)}, to which {Authority(from)} redirected, could not be reached ({Innermost(e).Message})");
            }
            catch (OperationCanceledException)
            {
                throw new CrlFetchException($"{(from is null ? "it" : Authority(target))} did not answer GET {target.AbsolutePath} before the fetch's time limit "
                    + $"({Seconds(_source._timeout)} for all its requests) ran out");
            }
            catch (IOException e)
            {
                throw new CrlFetchException($"reading its answer failed ({e.Message})");
            }
        }

        private static string Authority(Uri uri) => uri.GetLeftPart(UriPartial.Authority);
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
