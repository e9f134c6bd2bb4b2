using System.Net;
using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;
using Morphisms.Agent.Kms;
using Morphisms.Attestation.Binding;

namespace Morphisms.Agent.Identity;

/// <summary>
/// A key pair generated inside the TEE for one attestation, its CSR, and the certificate the KMS signs for it.
/// The private key never leaves the process: only the CSR and the SPKI hash (inside the evidence) go out.
/// </summary>
public sealed class InstanceIdentity : IDisposable
{
    private readonly ECDsa _key = ECDsa.Create(ECCurve.NamedCurves.nistP256);
    private readonly string _function;

    /// <summary>Generates a fresh P-256 key for <paramref name="function"/>.</summary>
    public InstanceIdentity(string function) => _function = function;

    /// <summary>The public key's SubjectPublicKeyInfo (DER).</summary>
    public byte[] Spki => _key.ExportSubjectPublicKeyInfo();

    /// <summary>The CSR (PEM) the KMS signs.</summary>
    public string CsrPem => new CertificateRequest($"CN={_function}", _key, HashAlgorithmName.SHA256).CreateSigningRequestPem();

    /// <summary>The 64-byte REPORT_DATA binding the KMS nonce and this key.</summary>
    public byte[] ReportData(byte[] nonce) => ReportDataBinding.ForFunction(nonce, Spki);

    /// <summary>
    /// The serving certificate: the KMS-issued one with its CA chain, or — while the KMS has no PKI — a self-signed
    /// certificate for the same key (clients cannot chain it to the KMS CA; <see cref="ServingCertificate.Issued"/> says so).
    /// </summary>
    public ServingCertificate Certificate(LoginResult login, TimeProvider time)
    {
        if (!string.IsNullOrWhiteSpace(login.CertificatePem))
        {
            using var issued = X509Certificate2.CreateFromPem(login.CertificatePem);
            if (!issued.PublicKey.ExportSubjectPublicKeyInfo().AsSpan().SequenceEqual(Spki))
            {
                throw new AgentException(AgentExitCodes.AttestationRefused, "the KMS returned a certificate for a different key than the attested CSR");
            }

            var chain = new X509Certificate2Collection();
            foreach (var pem in login.CaChainPem)
            {
                chain.Add(X509Certificate2.CreateFromPem(pem));
            }

            return new ServingCertificate(issued.CopyWithPrivateKey(_key), chain, Issued: true);
        }

        var now = time.GetUtcNow();
        var request = new CertificateRequest($"CN={_function}", _key, HashAlgorithmName.SHA256);
        var san = new SubjectAlternativeNameBuilder();
        san.AddDnsName(_function);
        san.AddDnsName("localhost");
        san.AddIpAddress(IPAddress.Loopback);
        request.CertificateExtensions.Add(san.Build());
        request.CertificateExtensions.Add(new X509EnhancedKeyUsageExtension([new Oid("1.3.6.1.5.5.7.3.1")], false));

        // Valid as long as a token can live at most; the agent re-attests (new key, new certificate) before then.
        var selfSigned = request.CreateSelfSigned(now.AddMinutes(-1), now.AddHours(1));
        return new ServingCertificate(selfSigned, [], Issued: false);
    }

    /// <inheritdoc />
    public void Dispose() => _key.Dispose();
}

/// <summary>What the TLS terminator serves.</summary>
/// <param name="Certificate">The leaf with its private key.</param>
/// <param name="Chain">The CA chain sent with it.</param>
/// <param name="Issued">True when the KMS signed it; false for the self-signed stand-in.</param>
public sealed record ServingCertificate(X509Certificate2 Certificate, X509Certificate2Collection Chain, bool Issued);
