using System.Net.Http.Headers;
using System.Net.Security;
using System.Net.Sockets;
using System.Security.Authentication;
using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using Morphisms.Attestation.Trust;
using Morphisms.Client.Trust;

namespace Morphisms.Cli.Commands.Kms;

/// <summary>
/// A small Vault-API client for <c>morph kms</c>: JSON in, status and JSON out, the token in <c>X-Vault-Token</c>.
/// Failures become <see cref="KmsCliException"/>s: a 400 naming the request's input is the user's input (exit 2), and
/// anything else — a 400 that refuses a well-formed request in the KMS's current state (<see cref="StateRefusals"/>)
/// included — a refusal or failure (exit 1).
/// </summary>
/// <remarks>
/// Tokens, unseal key shares and secrets travel only where <see cref="MayCarrySecrets"/> allows: https, or plain http to
/// this machine (a dev KMS). Redirects are not left to <see cref="HttpClient"/>, which would replay
/// <c>X-Vault-Token</c> to wherever a <c>Location</c> points, http included: a 307 or 308 (an HA standby naming the
/// active node) is followed here, at most <see cref="MaxRedirects"/> times, only to an address that passes the same
/// check and names the same path and query (only scheme, host and port may change), through the same handler and so
/// the same TLS trust (<c>--ca-cert</c>, the name checked against the new host). Any other redirect is reported, not
/// followed.
/// <para>
/// When <c>morph kms trust</c> pinned the address (a <see cref="KmsTlsPin"/>), that pin decides TLS trust instead of the
/// system roots, on top of <c>--ca-cert</c> when one is given, for the first request and every redirect target alike:
/// a standby's <c>Location</c> is read from storage the KMS does not trust, so a target that is not an attested node of
/// the pinned KMS is refused in the handshake, before the token is sent. Without a record and without <c>--ca-cert</c>
/// the system roots decide, as for any https client.
/// </para>
/// </remarks>
public sealed class KmsHttp : IDisposable
{
    /// <summary>How many 307/308 redirects one request follows (a standby to the active node is one): <see cref="KmsTlsPin.MaxRedirects"/>.</summary>
    public const int MaxRedirects = KmsTlsPin.MaxRedirects;

    /// <summary>
    /// How the errors of a 400 that refuses a well-formed request in the KMS's current state begin: Vault answers these
    /// with 400 as it does malformed input, told apart only by the message (which Vault clients match as well). They are
    /// refusals (exit 1), as a 403 or 404 is: the same command line succeeds against another state, so it is no usage error.
    /// </summary>
    internal static readonly string[] StateRefusals =
    [
        // init on an initialised KMS, unseal of an uninitialised one.
        "Vault is already initialized",
        "Vault is not initialized",

        // A threshold of shares that does not open the root key (the progress restarts).
        "unseal failed:",

        // kv put --cas N after another write.
        "check-and-set parameter did not match the current version",

        // token lookup/renew/revoke of a token or accessor revoked or expired since.
        "invalid accessor",
        "token not found",
        "lease is not renewable",

        // token create beyond what the caller's token may grant.
        "root or sudo privileges required",
        "root tokens may not be created from a non-root token",
        "child policies must be subset of parent",
    ];

    private readonly HttpClient _http;
    private readonly string? _token;
    private readonly KmsTlsPin? _pin;
    private readonly string? _caFile;

    /// <summary>
    /// Creates a client for <paramref name="address"/>; <paramref name="caFile"/> replaces the system trust for TLS, and
    /// <paramref name="pin"/> (the address's <c>morph kms trust</c> record) replaces it too, on top of the file.
    /// </summary>
    /// <exception cref="KmsCliException">The address is plain http to another machine, or the CA file cannot be read.</exception>
    public KmsHttp(Uri address, string? token, string? caFile, KmsTlsPin? pin = null)
    {
        if (!MayCarrySecrets(address))
        {
            throw KmsCliException.Usage($"the KMS address {address} is plain http to another machine: the token, unseal keys and secrets would cross the network in clear; use https (plain http is accepted on loopback only)");
        }

        Address = address;
        _token = token;
        _pin = pin;
        _caFile = caFile;
        var handler = NewHandler(address);
        var roots = caFile is null ? null : LoadCertificates(caFile);
        if (pin is not null)
        {
            handler.SslOptions.CertificateChainPolicy = KmsPin.HandshakeChainPolicy();
            handler.SslOptions.RemoteCertificateValidationCallback = (_, certificate, _, errors) =>
                pin.Validate(certificate, errors) && (roots is null || Trusted(certificate, errors, roots));
        }
        else if (roots is not null)
        {
            handler.SslOptions.RemoteCertificateValidationCallback = (_, certificate, _, errors) => Trusted(certificate, errors, roots);
        }

        _http = new HttpClient(handler) { BaseAddress = address, Timeout = TimeSpan.FromSeconds(30) };
    }

    /// <summary>The KMS base URL.</summary>
    public Uri Address { get; }

    /// <summary>
    /// The handler for <paramref name="address"/>: redirects are followed by hand, and plain http (loopback only) never
    /// goes through HTTP_PROXY: .NET on Linux does not bypass a proxy for 127.0.0.1 unless NO_PROXY says so, and the
    /// proxy would read the token, unseal keys and secrets in clear. Over https a proxy only tunnels the TLS connection.
    /// </summary>
    internal static SocketsHttpHandler NewHandler(Uri address) =>
        new() { AllowAutoRedirect = false, UseProxy = address.Scheme == Uri.UriSchemeHttps };

    /// <summary>
    /// Whether a token or key may be sent to <paramref name="address"/>: https anywhere, plain http only to a loopback
    /// host (<c>localhost</c>, 127.0.0.0/8, ::1), where Vault-style dev setups listen and nothing crosses a network.
    /// <c>kms server --dcap-pcs</c> applies the same rule to the PCCS the KMS trusts for current collateral.
    /// </summary>
    public static bool MayCarrySecrets(Uri address) =>
        address.IsAbsoluteUri && (address.Scheme == Uri.UriSchemeHttps || (address.Scheme == Uri.UriSchemeHttp && address.IsLoopback));

    /// <summary>Sends a request and returns the reply; statuses in <paramref name="accept"/> besides 2xx are not failures.</summary>
    /// <exception cref="KmsCliException">The KMS is unreachable, or answered with an error status.</exception>
    public async Task<KmsReply> SendAsync(string method, string path, JsonObject? body, CancellationToken ct, bool authenticated = true, params int[] accept)
    {
        // A "." or ".." segment (a policy named "..", a KV path "a/../b") would be folded away by Uri, sending the request
        // to another path than the one named; the KMS refuses such names anyway, so they stop here, before anything is sent.
        var segments = path.Split('?', 2)[0].Split('/');
        if (segments.FirstOrDefault(s => s is "." or ".." || Uri.UnescapeDataString(s) is "." or "..") is { } dots)
        {
            throw KmsCliException.Usage($"'{path}' has a '{dots}' segment: name the path without it");
        }

        var target = new Uri(Address, "v1/" + path);
        var redirects = 0;
        Uri? from = null;
        while (true)
        {
            using var response = await SendOnceAsync(method, target, from, body, authenticated, ct).ConfigureAwait(false);
            var status = (int)response.StatusCode;
            if (status is 307 or 308 && !accept.Contains(status) && response.Headers.Location is { } location)
            {
                var next = location.IsAbsoluteUri ? location : new Uri(target, location);
                if (!MayCarrySecrets(next))
                {
                    throw new KmsCliException(ExitCodes.Rejected, $"the KMS at {target.GetLeftPart(UriPartial.Authority)} redirected ({status}) to {next}: not followed, since that is plain http to another machine and the request would cross the network in clear; give the KMS nodes https --api-addr URLs, or send this to the active node directly");
                }

                if (!KmsTlsPin.RedirectKeepsRequest(target, next))
                {
                    // A Location with a path would land this request, token and body, on another path of a real, pinned node.
                    throw new KmsCliException(ExitCodes.Rejected, $"the KMS at {target.GetLeftPart(UriPartial.Authority)} redirected ({status}) to {next}: not followed, since it names another path than {target.PathAndQuery} (a standby redirects to the same path on the active node); check the nodes' --api-addr, or send this to the active node directly");
                }

                if (_pin is not null && next.Scheme != Uri.UriSchemeHttps)
                {
                    // Loopback http carries no TLS key to check against the pin.
                    throw new KmsCliException(ExitCodes.Rejected, $"the KMS at {target.GetLeftPart(UriPartial.Authority)} redirected ({status}) to {next}: not followed, since {_pin.Record.KmsUrl} is pinned (morph kms trust) and plain http cannot show a pinned TLS key");
                }

                if (++redirects > MaxRedirects)
                {
                    throw new KmsCliException(ExitCodes.Rejected, $"the KMS redirected more than {MaxRedirects} times (the last time to {next}): not followed");
                }

                from = target;
                target = next;
                continue;
            }

            var raw = await response.Content.ReadAsStringAsync(ct).ConfigureAwait(false);
            var json = Parse(raw);
            if (status < 300 || accept.Contains(status))
            {
                return new KmsReply(status, json, raw);
            }

            var list = json?["errors"] is JsonArray array ? array.Select(e => e?.ToString() ?? string.Empty).ToList() : [];
            var errors = string.Join("; ", list);
            var redirect = status is >= 300 and < 400 && response.Headers.Location is { } other ? $" (a redirect to {other}, not followed)" : string.Empty;
            var message = $"the KMS answered {status}{redirect}{(errors.Length > 0 ? ": " + errors : string.Empty)}";
            var input = status == 400 && !list.Any(e => StateRefusals.Any(r => e.StartsWith(r, StringComparison.Ordinal)));
            // --json prints the body as is: whatever answered (an echoing proxy on a loopback port) must not print the token.
            var shown = WithoutToken(raw);
            throw new KmsCliException(input ? ExitCodes.UsageOrInput : ExitCodes.Rejected, WithoutToken(message), shown.Length > 0 ? shown : null);
        }
    }

    private string WithoutToken(string text) =>
        string.IsNullOrEmpty(_token) ? text : text.Replace(_token, "[redacted]", StringComparison.Ordinal);

    /// <summary>
    /// One request to <paramref name="target"/> (redirected there from <paramref name="from"/>, if not null), built anew
    /// for each hop (a request message cannot be resent).
    /// </summary>
    private async Task<HttpResponseMessage> SendOnceAsync(string method, Uri target, Uri? from, JsonObject? body, bool authenticated, CancellationToken ct)
    {
        using var request = new HttpRequestMessage(new HttpMethod(method), target);
        if (authenticated && _token is not null)
        {
            request.Headers.Add("X-Vault-Token", _token);
        }

        if (body is not null)
        {
            request.Content = new StringContent(body.ToJsonString(), Encoding.UTF8);
            request.Content.Headers.ContentType = new MediaTypeHeaderValue("application/json");
        }

        try
        {
            _pin?.Reset();
            return await _http.SendAsync(request, ct).ConfigureAwait(false);
        }
        catch (HttpRequestException) when (_pin?.LastFailure is { } refused)
        {
            // Refused in the handshake: no byte of the request, the token least of all, went there.
            var authority = target.GetLeftPart(UriPartial.Authority);
            throw new KmsCliException(ExitCodes.Rejected, from is null
                ? $"the KMS at {authority} is not the one pinned for {_pin.Record.KmsUrl}: {refused}; nothing was sent. If its TLS key changed "
                    + $"(a new certificate key, or a restart with a self-signed one), trust it again: morph kms trust {authority}"
                : $"the KMS at {from.GetLeftPart(UriPartial.Authority)} redirected to {authority}, which is not a node of the KMS pinned for {_pin.Record.KmsUrl}: "
                    + $"{refused}; not followed, the token was not sent. If it is a node of your KMS, trust it by its address while it is active (morph kms trust {authority}) and retry");
        }
        catch (HttpRequestException e)
        {
            throw new KmsCliException(ExitCodes.Rejected, await UnreachableAsync(target, e, ct).ConfigureAwait(false));
        }
        catch (TaskCanceledException) when (!ct.IsCancellationRequested)
        {
            throw new KmsCliException(ExitCodes.Rejected, $"the KMS at {target.GetLeftPart(UriPartial.Authority)} did not answer in time");
        }
    }

    /// <inheritdoc />
    public void Dispose() => _http.Dispose();

    /// <summary>
    /// Why <paramref name="target"/> could not be reached, from the causes inside <paramref name="failure"/> (its own
    /// message, "The SSL connection could not be established, see inner exception" or "An error occurred while sending the
    /// request", names none), with what to do about it.
    /// </summary>
    private async Task<string> UnreachableAsync(Uri target, HttpRequestException failure, CancellationToken ct)
    {
        var authority = target.GetLeftPart(UriPartial.Authority);
        var causes = new List<Exception>();
        for (Exception? e = failure; e is not null; e = e.InnerException)
        {
            causes.Add(e);
        }

        var cause = (causes.Select(e => e.Message).LastOrDefault(m => !m.Contains("see inner exception", StringComparison.OrdinalIgnoreCase)) ?? failure.Message).TrimEnd('.');
        if (causes.OfType<AuthenticationException>().Any() && causes.Any(e => e.Message.Contains("certificate", StringComparison.OrdinalIgnoreCase)))
        {
            // Refused in the handshake, before the request: without a pin or a CA file the system roots decided, and a
            // KMS's self-signed or private certificate is in none of them.
            return _caFile is not null
                ? $"the KMS's certificate at {authority} is not trusted: it does not chain to a certificate in {_caFile} (--ca-cert, ${KmsConnection.CaCertVariable} or morph up's), or does not name {target.Host}; nothing was sent"
                : $"the KMS's certificate at {authority} is not trusted ({cause}); nothing was sent. Run `morph kms trust {authority}` first "
                    + "(--dev for a dev KMS of this installation, else --expect-measurement TEE:HEX), or give its CA with --ca-cert FILE";
        }

        if (target.Scheme == Uri.UriSchemeHttp && failure.HttpRequestError is HttpRequestError.ResponseEnded or HttpRequestError.InvalidResponse
            && await AnswersTlsAsync(target, ct).ConfigureAwait(false))
        {
            return $"the KMS at {authority} answered TLS, but this address is http://: use https://{target.Authority}"
                + (_pin is null ? $" (and `morph kms trust https://{target.Authority}` first, --dev for a dev KMS of this installation)" : string.Empty);
        }

        return $"cannot reach the KMS at {authority}: {cause}";
    }

    /// <summary>
    /// Whether the server at <paramref name="target"/> (plain http, loopback) presents a TLS certificate: a KMS started with
    /// TLS closes a plain HTTP request without an answer, which says nothing by itself. Asked only after such a failure;
    /// the handshake is abandoned at the certificate, so nothing is sent.
    /// </summary>
    private static async Task<bool> AnswersTlsAsync(Uri target, CancellationToken ct)
    {
        var presented = false;
        using var timeout = CancellationTokenSource.CreateLinkedTokenSource(ct);
        timeout.CancelAfter(TimeSpan.FromSeconds(5));
        try
        {
            using var tcp = new TcpClient();
            await tcp.ConnectAsync(target.DnsSafeHost, target.Port, timeout.Token).ConfigureAwait(false);
            await using var tls = new SslStream(tcp.GetStream());
            await tls.AuthenticateAsClientAsync(new SslClientAuthenticationOptions
            {
                TargetHost = target.DnsSafeHost,
                RemoteCertificateValidationCallback = (_, certificate, _, _) =>
                {
                    presented = certificate is not null;
                    return false;
                },
            }, timeout.Token).ConfigureAwait(false);
        }
        catch (Exception e) when (e is AuthenticationException or IOException or SocketException or OperationCanceledException)
        {
        }

        return presented;
    }

    private static JsonObject? Parse(string raw)
    {
        try
        {
            return raw.Length == 0 ? null : JsonNode.Parse(raw) as JsonObject;
        }
        catch (JsonException)
        {
            return null;
        }
    }

    private static X509Certificate2Collection LoadCertificates(string file)
    {
        try
        {
            var certificates = new X509Certificate2Collection();
            certificates.ImportFromPemFile(file);
            return certificates.Count > 0 ? certificates : throw KmsCliException.Usage($"--ca-cert: {file} holds no PEM certificate");
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException or CryptographicException)
        {
            throw KmsCliException.Usage($"--ca-cert: {e.Message}");
        }
    }

    private static bool Trusted(X509Certificate? presented, SslPolicyErrors errors, X509Certificate2Collection roots)
    {
        // The given file replaces the system roots, but the name must still match the address.
        if (presented is null || errors.HasFlag(SslPolicyErrors.RemoteCertificateNameMismatch) || errors.HasFlag(SslPolicyErrors.RemoteCertificateNotAvailable))
        {
            return false;
        }

        using var certificate = X509CertificateLoader.LoadCertificate(presented.GetRawCertData());
        using var chain = new X509Chain();
        chain.ChainPolicy.TrustMode = X509ChainTrustMode.CustomRootTrust;
        chain.ChainPolicy.CustomTrustStore.AddRange(roots);
        chain.ChainPolicy.RevocationMode = X509RevocationMode.NoCheck;
        return chain.Build(certificate);
    }
}

/// <summary>A KMS reply.</summary>
/// <param name="Status">HTTP status.</param>
/// <param name="Body">The JSON body, when there is one.</param>
/// <param name="Raw">The body as text.</param>
public sealed record KmsReply(int Status, JsonObject? Body, string Raw)
{
    /// <summary>The envelope's <c>data</c> object (empty when absent).</summary>
    public JsonObject Data => Body?["data"] as JsonObject ?? [];

    // A record's ToString prints every property, and a JsonObject prints as its JSON: a reply's body may hold a token,
    // unseal keys or secret values, so only the status shows in log lines, exception messages and debugger displays.
    private bool PrintMembers(StringBuilder builder)
    {
        builder.Append("Status = ").Append(Status).Append(", Body = [redacted], Raw = [redacted]");
        return true;
    }
}
