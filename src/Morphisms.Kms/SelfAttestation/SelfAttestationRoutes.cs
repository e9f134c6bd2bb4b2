using System.Text.Json.Nodes;
using Morphisms.Attestation;
using Morphisms.Attestation.Binding;
using Morphisms.Kms.Http;
using Morphisms.Kms.Pki;

namespace Morphisms.Kms.SelfAttestation;

/// <summary>
/// <c>GET sys/attestation?nonce=HEX</c>: the KMS's own evidence, with REPORT_DATA =
/// SHA-512("morphisms/kms/v1" ‖ nonce ‖ SHA-256(TLS certificate SPKI) ‖ SHA-256(root CA certificate DER)), and
/// <c>root_ca_proof</c>: the root CA key's signature over the same nonce, TLS key and root
/// (<see cref="KmsRootCaProof"/>). A client that checks the evidence, recomputes the binding from the certificate it
/// saw on the connection and the root CA served here, and verifies the proof with that root's key, can then pin that
/// CA without trusting anything on first use. Only an unsealed node that serves answers: the root CA and its key are
/// behind the barrier, so a sealed node answers 503 (and an HA standby redirects), presenting no root to prove.
/// </summary>
internal static class SelfAttestationRoutes
{
    private const int MinNonceBytes = 16;
    private const int MaxNonceBytes = 64;

    public static void Register(RouteTable routes, KmsIdentity identity)
    {
        routes.Add(
            new Route("sys/attestation", "attestation") { Unauthenticated = true },
            (Operation.Read, (r, _, ct) => AttestAsync(r, identity, ct)));
    }

    private static async Task<KmsResponse?> AttestAsync(KmsRequest request, KmsIdentity identity, CancellationToken ct)
    {
        var nonce = Nonce(request.Fields.String("nonce"));
        var state = request.RequireState();
        if (identity.TlsCertificate is not { } tls)
        {
            throw new KmsException(501, "self-attestation is not available: this KMS serves plain HTTP, and the evidence binds the TLS certificate's key");
        }

        if (identity.EvidenceProvider is not { } provider)
        {
            throw new KmsException(501, "self-attestation is not available: this KMS has no TEE evidence provider (configure a simulated TEE on machines without TEE hardware)");
        }

        var rootCa = state.RootCa.Certificate;
        var tlsSpki = tls.PublicKey.ExportSubjectPublicKeyInfo();
        var reportData = ReportDataBinding.ForKms(nonce, tlsSpki, rootCa.RawData);

        // The certificate is public, so binding it proves nothing about who holds its key: the signature does. The key
        // is read from the barrier for this one signature, as every use of it is, rather than kept in memory.
        byte[] rootCaProof;
        using (var signer = await KmsRootCa.LoadSignerAsync(state.Barrier, ct).ConfigureAwait(false))
        {
            rootCaProof = KmsRootCaProof.Sign(signer.Key, nonce, tlsSpki, rootCa.RawData);
        }

        var evidence = await provider.GetEvidenceAsync(reportData, ct).ConfigureAwait(false);
        var response = KmsResponse.WithData(new JsonObject
        {
            ["tee"] = evidence.Tee.ToWireName(),
            ["simulated"] = evidence.Simulated,
            ["evidence"] = Convert.ToBase64String(evidence.Evidence),
            ["endorsements"] = evidence.Endorsement is { } e ? Convert.ToBase64String(e) : null,
            ["vcek"] = evidence.Tee == TeeType.Snp && evidence.Endorsement is { } vcek ? Pem("CERTIFICATE", vcek) : null,
            ["nonce"] = Convert.ToHexStringLower(nonce),
            ["report_data"] = Convert.ToHexStringLower(reportData),
            ["root_ca"] = state.RootCa.CertificatePem,
            ["tls_certificate"] = tls.ExportCertificatePem(),
            ["binding"] = "SHA-512(\"morphisms/kms/v1\" ‖ nonce ‖ SHA-256(TLS certificate SPKI) ‖ SHA-256(root CA certificate DER))",
            ["root_ca_proof"] = Convert.ToBase64String(rootCaProof),
            ["root_ca_proof_binding"] = KmsRootCaProof.Description,
        });
        if (evidence.Simulated)
        {
            response.Warnings.Add("simulated evidence: it proves nothing about TEE hardware; accept it only where the simulated root is deliberately trusted");
        }

        return response;
    }

    private static string Pem(string label, byte[] der) => new(System.Security.Cryptography.PemEncoding.Write(label, der));

    private static byte[] Nonce(string? hex)
    {
        if (string.IsNullOrEmpty(hex))
        {
            throw KmsException.BadRequest("missing required parameter 'nonce': 16-64 random bytes, hex");
        }

        if (hex.Length % 2 != 0 || hex.Length < MinNonceBytes * 2 || hex.Length > MaxNonceBytes * 2 || !hex.All(char.IsAsciiHexDigit))
        {
            throw KmsException.BadRequest($"invalid value for parameter 'nonce': expected {MinNonceBytes}-{MaxNonceBytes} bytes as hex");
        }

        return Convert.FromHexString(hex);
    }
}
