using Morphisms.Attestation;
using Morphisms.Attestation.Identity;
using Morphisms.Kms.Attest;
using Morphisms.Kms.Barrier;

namespace Morphisms.Kms.Pki;

/// <summary>
/// Signs an attested instance's CSR at login through the PKI mount at <c>pki/</c> (rooted in the KMS root CA, so
/// the chain ends at the root <c>sys/attestation</c> serves). The role is derived from the registry rather than
/// stored: the certificate may only name the function and its matching revision, and lives as long as the
/// token's max TTL or <see cref="KmsServerOptions.FunctionCertificateMaxTtl"/>, whichever is shorter. Without a
/// KMS-rooted mount at <c>pki/</c> (an operator unmounted it) no certificate is issued.
/// </summary>
/// <param name="core">The KMS, for its options.</param>
internal sealed class FunctionCertificateIssuer(KmsCore core) : IFunctionCertificateIssuer
{
    /// <summary>The mount that signs function certificates.</summary>
    public const string MountPath = "pki/";

    /// <inheritdoc />
    public async Task<IssuedCertificate> IssueAsync(FunctionCertificateRequest request, WriteSet writes, CancellationToken ct)
    {
        if (request.State.Mounts.Resolve(MountPath) is not { Backend: PkiBackend pki, Entry.Path: MountPath } || !pki.IsKmsRooted)
        {
            return new IssuedCertificate("", []);
        }

        var identity = new AttestedIdentityExtension(
            request.Attestation.Tee.ToWireName(),
            request.Attestation.Claims.Measurement.ToArray(),
            request.Function.Name,
            request.Revision,
            request.EvidenceSha256,
            request.Attestation.Simulated);

        // Clients that check no CRL (RevocationCheck.Off) have only expiry to end a retired revision's certificate, so
        // it must come soon whatever the token may live (the agent re-attests two thirds through the certificate's life).
        var validity = TimeSpan.FromSeconds(request.Function.TokenMaxTtl);
        if (validity > core.Options.FunctionCertificateMaxTtl)
        {
            validity = core.Options.FunctionCertificateMaxTtl;
        }

        var (certificate, chain, serial, notAfter) = await pki.IssueFunctionCertificateAsync(
            new FunctionLeaf(request.Function.Name, request.Revision, request.Csr.PublicKey, validity, identity), writes, ct).ConfigureAwait(false);
        return new IssuedCertificate(certificate, chain, serial, notAfter);
    }
}
