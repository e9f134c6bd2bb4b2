using System.Net;
using System.Net.Security;
using System.Net.Sockets;
using System.Security.Cryptography.X509Certificates;
using Morphisms.Attestation.Identity;
using Morphisms.Client.Trust;

namespace Morphisms.Client.Functions;

/// <summary>
/// An <see cref="HttpMessageHandler"/> for talking to one function, and the public way to check a function's certificate:
/// every TLS handshake is checked against the pinned KMS root CA, the host and the expected function's attested identity
/// (<see cref="FunctionExpectation"/>) — so a certificate
/// from a rotated KMS intermediate or a new function revision is verified again on its own merits,
/// and a connection whose certificate fails is never used. Unless <see cref="FunctionRevocationOptions"/> turns it off, each
/// handshake's certificate is also looked up in a current CRL of the CA that issued it, fetched from the pinned KMS (at
/// most every <see cref="FunctionRevocationOptions.CrlMaxAge"/>, 30 s by default), and refused when listed or when no
/// valid CRL can be had. Before a connection is opened, the CRL of the KMS's default issuer is fetched unless one is young
/// enough, asynchronously: the TLS certificate callback is synchronous, so a burst of first connections that each waited
/// there for the fetch would hold a thread-pool thread apiece and could starve the fetch itself; waiting before the
/// connection holds none, and the handshakes then find the CRL (used only if it verifies as their issuing CA's).
/// Only https requests are sent: any other scheme has no certificate to check, so it is refused
/// (<see cref="FunctionNotHttpsException"/>) before the warm-up and the connection, whatever the revocation setting.
/// </summary>
public static class FunctionHttpHandler
{
    /// <summary>Creates a handler enforcing <paramref name="expectation"/> under <paramref name="trust"/>.</summary>
    /// <param name="trust">The pinned KMS (from <c>morph kms trust</c> or <see cref="KmsAttestationClient"/>).</param>
    /// <param name="expectation">The function, host and optional measurement required.</param>
    /// <param name="time">The clock for certificate validity.</param>
    /// <param name="onVerified">Called with the attested identity of each accepted connection.</param>
    /// <param name="onRejected">Called with the failures of each refused connection.</param>
    /// <param name="chainCache">Chains already built to the pinned root (default: <see cref="VerifiedChainCache.Shared"/>).</param>
    /// <param name="revocation">
    /// How revocation is checked (default: required, against CRLs from <paramref name="trust"/>'s KMS, kept in
    /// <see cref="FunctionCrlCache.Shared"/> for 30 s, following an HA standby's redirect only with a
    /// <see cref="FunctionRevocationOptions.TrustStore"/>). <see cref="RevocationCheck.Off"/> is insecure and warns.
    /// </param>
    /// <param name="connect">
    /// Opens the connection to the function (default: TCP to the request's host and port). Set it here rather than as the
    /// handler's <see cref="SocketsHttpHandler.ConnectCallback"/>, which would replace the CRL warm-up that runs before it.
    /// </param>
    /// <returns>
    /// A handler whose <see cref="SocketsHttpHandler.ConnectCallback"/> refuses a request that is not https, runs the CRL
    /// warm-up (unless <see cref="RevocationCheck.Off"/>), then <paramref name="connect"/>; its
    /// <see cref="SocketsHttpHandler.PlaintextStreamFilter"/> refuses a request that is not https again, once connected and
    /// before the request is written, for a caller that replaced the connect callback.
    /// Replacing that callback skips the warm-up, not the check: a handshake that finds no CRL then waits for its own
    /// fetch in the synchronous TLS callback, at most <see cref="FunctionRevocationOptions.FetchTimeout"/>, with the same
    /// verdicts, but holding a thread-pool thread meanwhile, one per connection of a cold burst, which can delay the fetch
    /// until the handshakes are refused.
    /// </returns>
    /// <exception cref="InvalidOperationException">
    /// <paramref name="trust"/> must not be used (<see cref="KmsTrustRecord.UsabilityProblem"/>: no measurement policy,
    /// or a TDX KMS pinned by MRTD alone); the message says how to trust the KMS again.
    /// </exception>
    /// <remarks>
    /// A request through the handler whose scheme is not https fails with an <see cref="HttpRequestException"/> whose inner
    /// exception is a <see cref="FunctionNotHttpsException"/>: nothing is sent, no CRL is fetched, and neither
    /// <paramref name="onVerified"/> nor <paramref name="onRejected"/> is called.
    /// </remarks>
    public static SocketsHttpHandler Create(KmsTrustRecord trust, FunctionExpectation expectation, TimeProvider? time = null,
        Action<AttestedIdentityExtension>? onVerified = null, Action<IReadOnlyList<string>>? onRejected = null,
        VerifiedChainCache? chainCache = null, FunctionRevocationOptions? revocation = null,
        Func<SocketsHttpConnectionContext, CancellationToken, ValueTask<Stream>>? connect = null)
    {
        ArgumentNullException.ThrowIfNull(trust);
        revocation ??= new FunctionRevocationOptions();
        ArgumentOutOfRangeException.ThrowIfLessThanOrEqual(revocation.CrlMaxAge, TimeSpan.Zero, nameof(revocation));
        ArgumentOutOfRangeException.ThrowIfLessThanOrEqual(revocation.FetchTimeout, TimeSpan.Zero, nameof(revocation));

        // A root CA pinned without a known measurement check is no better than one learned on first use.
        if (trust.UsabilityProblem() is { } problem)
        {
            throw new InvalidOperationException(problem);
        }

        var root = X509Certificate2.CreateFromPem(trust.RootCaPem);
        var clock = time ?? TimeProvider.System;
        var cache = chainCache ?? VerifiedChainCache.Shared;
        FunctionRevocationChecker? revocationChecker = null;
        if (revocation.Check == RevocationCheck.Off)
        {
            (revocation.OnWarning ?? Console.Error.WriteLine)(FunctionRevocationOptions.OffWarning);
        }
        else
        {
            revocationChecker = new FunctionRevocationChecker(
                revocation.Cache ?? FunctionCrlCache.Shared,
                revocation.Source ?? new KmsCrlSource(trust, revocation.FetchTimeout, revocation.TrustStore),
                revocation.CrlMaxAge,
                revocation.FetchTimeout);
        }

        var handler = new SocketsHttpHandler
        {
            // A pooled connection keeps the certificate it was verified with; a short lifetime makes
            // a rotated certificate get verified again soon.
            PooledConnectionLifetime = TimeSpan.FromMinutes(1),
        };
        var open = connect ?? ConnectAsync;
        handler.ConnectCallback = async (context, cancellationToken) =>
        {
            // First, before the CRL warm-up and the connection: an http request would get neither TLS nor a certificate
            // check, so it would go out in clear to whatever answers, and onVerified would never fire.
            RefuseUnlessHttps(context.InitialRequestMessage);
            if (revocationChecker is not null)
            {
                // Here waiting holds no thread, unlike in the certificate callback below (see the class summary).
                await revocationChecker.WarmAsync(clock.GetUtcNow(), cancellationToken).ConfigureAwait(false);
            }

            return await open(context, cancellationToken).ConfigureAwait(false);
        };

        // Again once connected, before the request is written: a caller that replaces the ConnectCallback (which the
        // remarks above allow) removes the check there, and this one still keeps an http request from going out.
        handler.PlaintextStreamFilter = (context, _) =>
        {
            RefuseUnlessHttps(context.InitialRequestMessage);
            return ValueTask.FromResult(context.PlaintextStream);
        };
        handler.SslOptions = new SslClientAuthenticationOptions
        {
            TargetHost = expectation.Host,

            // The TLS stack builds a chain before calling back, whatever the callback decides; with no anchor that
            // build stops at the presented certificates (~0.1 ms, where one to the P-384 root costs ~1.5 ms) and its
            // verdict is ignored. The callback's validation, against the pinned root and cached, is the one that counts.
            CertificateChainPolicy = AnchorlessPolicy(),
            RemoteCertificateValidationCallback = (_, certificate, chain, _) =>
            {
                if (certificate is null)
                {
                    onRejected?.Invoke(["the function presented no certificate"]);
                    return false;
                }

                using var leaf = new X509Certificate2(certificate);

                // The certificates the server sent besides its leaf, in the order it sent them.
                var presented = chain?.ChainPolicy.ExtraStore.Cast<X509Certificate2>().ToList() ?? [];
                var failures = FunctionCertificateValidator.Validate(leaf, presented, root, expectation, clock.GetUtcNow(), cache, revocationChecker, out var identity);
                if (failures.Count > 0)
                {
                    onRejected?.Invoke(failures);
                    return false;
                }

                onVerified?.Invoke(identity!);
                return true;
            },
        };
        return handler;
    }

    /// <summary>
    /// A <c>connect</c> for <see cref="Create"/> that opens every connection to <paramref name="endPoint"/> (a gateway's
    /// address) whatever the request's host names. That host stays the TLS server name sent, which the gateway routes by
    /// (a traffic tag's <c>TAG-FUNCTION.DOMAIN</c> reaches the tagged revision); the certificate is checked against the
    /// expectation's <see cref="FunctionExpectation.Host"/>, which for a tag is still <c>FUNCTION.DOMAIN</c>.
    /// </summary>
    public static Func<SocketsHttpConnectionContext, CancellationToken, ValueTask<Stream>> ConnectTo(EndPoint endPoint)
    {
        ArgumentNullException.ThrowIfNull(endPoint);
        return (_, cancellationToken) => OpenAsync(endPoint, cancellationToken);
    }

    /// <summary>
    /// Throws unless <paramref name="request"/> is https: only a TLS handshake lets the handler check the function's
    /// certificate, so a request in any other scheme would reach an unverified server in clear. Nothing is sent.
    /// </summary>
    /// <exception cref="FunctionNotHttpsException">The request's scheme is not https.</exception>
    private static void RefuseUnlessHttps(HttpRequestMessage request)
    {
        var uri = request.RequestUri;
        if (uri is null || !uri.IsAbsoluteUri || uri.Scheme != Uri.UriSchemeHttps)
        {
            throw new FunctionNotHttpsException(uri);
        }
    }

    /// <summary>What <see cref="SocketsHttpHandler"/> does without a <see cref="SocketsHttpHandler.ConnectCallback"/>.</summary>
    private static ValueTask<Stream> ConnectAsync(SocketsHttpConnectionContext context, CancellationToken cancellationToken) =>
        OpenAsync(context.DnsEndPoint, cancellationToken);

    private static async ValueTask<Stream> OpenAsync(EndPoint endPoint, CancellationToken cancellationToken)
    {
        var socket = new Socket(SocketType.Stream, ProtocolType.Tcp) { NoDelay = true };
        try
        {
            await socket.ConnectAsync(endPoint, cancellationToken).ConfigureAwait(false);
            return new NetworkStream(socket, ownsSocket: true);
        }
        catch
        {
            socket.Dispose();
            throw;
        }
    }

    private static X509ChainPolicy AnchorlessPolicy() => new()
    {
        TrustMode = X509ChainTrustMode.CustomRootTrust,
        RevocationMode = X509RevocationMode.NoCheck,
        DisableCertificateDownloads = true,
    };
}
