using System.Net;
using System.Net.Http.Headers;
using System.Net.Sockets;
using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;
using Morphisms.Attestation;
using Morphisms.Attestation.Identity;
using Morphisms.Client.Functions;
using Morphisms.Client.Trust;

namespace Morphisms.Cli.Commands.Invoke;

/// <summary>What <see cref="FunctionInvoker"/> sends.</summary>
/// <param name="Function">The function name; the request goes to <c>FUNCTION.DOMAIN</c> (<see cref="Host"/>).</param>
/// <param name="Domain">The serving domain.</param>
/// <param name="Gateway">Where to connect (the gateway routes by SNI alone).</param>
/// <param name="Path">The request path.</param>
/// <param name="Data">The POST body, or null for a GET.</param>
/// <param name="ExpectedMeasurement">When set, the attested TEE and measurement must be this pin's.</param>
/// <param name="NoRevocationCheck">
/// INSECURE (<c>--no-revocation-check</c>): fetch no CRL from the KMS, so a retired revision's instance is accepted until its
/// certificate expires; a warning is printed.
/// </param>
/// <param name="TrustStore">
/// The trust store the KMS's record came from: a CRL fetch an HA standby redirects follows the redirect to a node this
/// store attests for the same KMS (<see cref="FunctionRevocationOptions.TrustStore"/>); null follows none.
/// </param>
/// <param name="Tag">
/// A traffic tag (<c>morph traffic --tag</c>): the request goes to <c>TAG-FUNCTION.DOMAIN</c>, which the gateway routes to the
/// tagged revision, while the certificate is still checked as <see cref="Function"/>'s (<see cref="FunctionHost"/>).
/// </param>
internal sealed record InvokeRequest(string Function, string Domain, IPEndPoint Gateway, string Path, byte[]? Data, FunctionMeasurementPin? ExpectedMeasurement,
    bool NoRevocationCheck = false, KmsTrustStore? TrustStore = null, string? Tag = null)
{
    /// <summary>The function's own host name, <c>FUNCTION.DOMAIN</c>: the name its certificate must carry.</summary>
    public string FunctionHost => $"{Function}.{Domain}";

    /// <summary>
    /// The host the request is sent to, and so the TLS server name the gateway routes by: <see cref="FunctionHost"/>, or the
    /// tag's host <c>TAG-FUNCTION.DOMAIN</c> (the serving host's naming, <c>FunctionRoute.TagHost</c>).
    /// </summary>
    public string Host => Tag is null ? FunctionHost : $"{Tag}-{Function}.{Domain}";
}

/// <summary>What came back: the response (with its <c>Location</c>, a redirect not being followed), or the reasons the function's certificate was refused.</summary>
internal sealed record InvokeResult(HttpStatusCode? Status, byte[] Body, AttestedIdentityExtension? Identity, IReadOnlyList<X509Certificate2> Chain, IReadOnlyList<string> Refusals, Uri? Location = null);

/// <summary>
/// Calls a function through the confidential gateway with <see cref="FunctionHttpHandler"/>: the TLS session ends
/// in the instance, whose certificate must chain to the pinned KMS root CA and carry the function's attested
/// identity, and must not be on a current CRL of its issuing CA from the pinned KMS (unless the request says
/// <see cref="InvokeRequest.NoRevocationCheck"/>). Nothing is sent on a connection whose certificate fails. A redirect is
/// not followed: the request already
/// went to the verified function, and its answer (a 3xx with a <c>Location</c>) is what the caller reports.
/// </summary>
internal static class FunctionInvoker
{
    /// <summary>How long a call may take: scale-from-zero holds the first request while an instance starts and attests.</summary>
    public static readonly TimeSpan Timeout = TimeSpan.FromMinutes(2);

    /// <summary>Sends <paramref name="request"/>; the warning of <see cref="InvokeRequest.NoRevocationCheck"/> goes to <paramref name="warnings"/> (default: standard error).</summary>
    public static async Task<InvokeResult> InvokeAsync(KmsTrustRecord trust, InvokeRequest request, CancellationToken ct, TextWriter? warnings = null)
    {
        var expectation = new FunctionExpectation
        {
            Function = request.Function,
            // The function's name even for a tag: its certificate names FUNCTION.DOMAIN and REVISION.FUNCTION.DOMAIN, never a
            // tag's host, and a tagged revision is still this function, attested as such.
            Host = request.FunctionHost,
            Measurement = request.ExpectedMeasurement,
            // A simulated identity proves nothing about hardware; it is acceptable only from a KMS that is itself
            // simulated, i.e. a development installation the user already chose to trust as such.
            AllowSimulated = trust.Simulated,
        };
        AttestedIdentityExtension? identity = null;
        IReadOnlyList<string> refusals = [];
        List<X509Certificate2> chain = [];
        // A CRL cache of its own: one invocation is one process's worth of connections, as from the command line, so a
        // revocation made since an earlier call in the same process (tests, quickstart) is seen at once.
        var revocation = new FunctionRevocationOptions
        {
            Check = request.NoRevocationCheck ? RevocationCheck.Off : RevocationCheck.Required,
            Cache = new FunctionCrlCache(),
            OnWarning = (warnings ?? Console.Error).WriteLine,
            TrustStore = request.TrustStore,
        };
        using var handler = FunctionHttpHandler.Create(trust, expectation, onVerified: i => identity = i, onRejected: f => refusals = f, revocation: revocation,
            connect: FunctionHttpHandler.ConnectTo(request.Gateway));
        var verify = handler.SslOptions.RemoteCertificateValidationCallback!;
        handler.SslOptions.RemoteCertificateValidationCallback = (sender, certificate, presented, errors) =>
        {
            // Keep what was presented for --show-attestation; the decision stays FunctionHttpHandler's.
            chain = [.. presented?.ChainPolicy.ExtraStore.Cast<X509Certificate2>().Select(c => X509CertificateLoader.LoadCertificate(c.RawData)) ?? []];
            if (certificate is not null && !chain.Any(c => c.RawData.AsSpan().SequenceEqual(certificate.GetRawCertData())))
            {
                chain.Insert(0, X509CertificateLoader.LoadCertificate(certificate.GetRawCertData()));
            }

            return verify(sender, certificate, presented, errors);
        };
        // A redirect is the function's answer, not an address to send the body to again: following it would open a
        // second connection (to the gateway, whatever the Location says) that the validator, fixed to this function's
        // host, refuses, and that refusal would then read as if the verified function had received nothing.
        handler.AllowAutoRedirect = false;

        using var http = new HttpClient(handler) { Timeout = Timeout };
        // The request's host is the TLS server name SocketsHttpHandler sends (and the Host header): for a tag, its host, which
        // the gateway routes to the tagged revision; the certificate is checked against the expectation above regardless.
        using var message = new HttpRequestMessage(request.Data is null ? HttpMethod.Get : HttpMethod.Post, $"https://{request.Host}{request.Path}");
        if (request.Data is not null)
        {
            message.Content = new ByteArrayContent(request.Data);
            message.Content.Headers.ContentType = new MediaTypeHeaderValue("application/octet-stream");
        }

        try
        {
            using var response = await http.SendAsync(message, ct);
            var body = await response.Content.ReadAsByteArrayAsync(ct);
            return new InvokeResult(response.StatusCode, body, identity, chain, [], response.Headers.Location);
        }
        catch (HttpRequestException) when (refusals.Count > 0)
        {
            return new InvokeResult(null, [], null, chain, refusals);
        }
    }

    /// <summary>Prints the attested identity and a summary of the certificate chain.</summary>
    public static async Task PrintAttestationAsync(TextWriter stdout, KmsTrustRecord trust, InvokeResult result)
    {
        var identity = result.Identity!;
        await stdout.WriteLineAsync($"attestation  verified: the TLS session ends in an instance the KMS attested");
        await stdout.WriteLineAsync($"  function     {identity.Function}");
        await stdout.WriteLineAsync($"  revision     {identity.Revision}");
        await stdout.WriteLineAsync($"  tee          {identity.Tee}{(identity.Simulated ? " (SIMULATED: accepted only because the pinned KMS is itself simulated; proves nothing about hardware)" : string.Empty)}");
        await stdout.WriteLineAsync($"  simulated    {(identity.Simulated ? "true" : "false")}");
        // TEE-typed, as the certificate carries it: what `--expect-measurement` takes to pin this function.
        await stdout.WriteLineAsync($"  measurement  {identity.Tee}:{Hex.Of(identity.Measurement)}");
        await stdout.WriteLineAsync($"  evidence     sha256 {Hex.Of(identity.EvidenceSha256)}");
        await stdout.WriteLineAsync($"  chain        (pinned KMS root CA sha256 {trust.RootCaSha256})");
        using var root = X509Certificate2.CreateFromPem(trust.RootCaPem);
        var chain = result.Chain.Any(c => c.RawData.AsSpan().SequenceEqual(root.RawData)) ? result.Chain : [.. result.Chain, root];
        foreach (var certificate in chain)
        {
            var pinned = string.Equals(Convert.ToHexStringLower(SHA256.HashData(certificate.RawData)), trust.RootCaSha256, StringComparison.Ordinal);
            await stdout.WriteLineAsync($"    {certificate.Subject}, until {certificate.NotAfter.ToUniversalTime():yyyy-MM-ddTHH:mm:ssZ}{(pinned ? " [pinned root]" : string.Empty)}");
        }
    }
}
