using System.Net.Security;
using System.Security.Cryptography.X509Certificates;
using Morphisms.Attestation.Identity;
using Morphisms.Client.Trust;

namespace Morphisms.Client.Functions;

/// <summary>
/// An <see cref="HttpMessageHandler"/> for talking to one function: every TLS handshake is checked
/// with <see cref="FunctionCertificateValidator"/> against the pinned KMS root CA — so a certificate
/// from a rotated KMS intermediate or a new function revision is verified again on its own merits,
/// and a connection whose certificate fails is never used.
/// </summary>
public static class FunctionHttpHandler
{
    /// <summary>Creates a handler enforcing <paramref name="expectation"/> under <paramref name="trust"/>.</summary>
    /// <param name="trust">The pinned KMS (from <c>morph kms trust</c> or <see cref="KmsAttestationClient"/>).</param>
    /// <param name="expectation">The function, host and optional measurement required.</param>
    /// <param name="time">The clock for certificate validity.</param>
    /// <param name="onVerified">Called with the attested identity of each accepted connection.</param>
    /// <param name="onRejected">Called with the failures of each refused connection.</param>
    public static SocketsHttpHandler Create(KmsTrustRecord trust, FunctionExpectation expectation, TimeProvider? time = null,
        Action<AttestedIdentityExtension>? onVerified = null, Action<IReadOnlyList<string>>? onRejected = null)
    {
        var root = X509Certificate2.CreateFromPem(trust.RootCaPem);
        var clock = time ?? TimeProvider.System;
        var handler = new SocketsHttpHandler
        {
            // A pooled connection keeps the certificate it was verified with; a short lifetime makes
            // a rotated certificate get verified again soon.
            PooledConnectionLifetime = TimeSpan.FromMinutes(1),
        };
        handler.SslOptions = new SslClientAuthenticationOptions
        {
            TargetHost = expectation.Host,

            // The handshake builds the chain under this policy, and the callback checks that chain: one build against
            // the pinned root instead of one against the OS store (a verdict nobody read) and ours after it.
            CertificateChainPolicy = FunctionCertificateValidator.ChainPolicy(root),
            RemoteCertificateValidationCallback = (_, certificate, chain, errors) =>
            {
                if (certificate is null)
                {
                    onRejected?.Invoke(["the function presented no certificate"]);
                    return false;
                }

                using var leaf = new X509Certificate2(certificate);
                AttestedIdentityExtension? identity;
                IReadOnlyList<string> failures;
                if (chain is not null && ReferenceEquals(clock, TimeProvider.System))
                {
                    // Host names are checked by the validator, which also names what is wrong: only chain errors count here.
                    var built = (errors & (SslPolicyErrors.RemoteCertificateChainErrors | SslPolicyErrors.RemoteCertificateNotAvailable)) == 0;
                    failures = FunctionCertificateValidator.ValidateBuilt(leaf, chain, built, root, expectation, out identity);
                }
                else
                {
                    // Another clock (tests, replays): the handshake built the chain at the real time, so build again at this one.
                    var presented = chain?.ChainPolicy.ExtraStore.Cast<X509Certificate2>().ToList() ?? [];
                    failures = FunctionCertificateValidator.Validate(leaf, presented, root, expectation, clock.GetUtcNow(), out identity);
                }

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
}
