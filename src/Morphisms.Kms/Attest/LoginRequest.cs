using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;
using Morphisms.Attestation;
using Morphisms.Attestation.Collateral;
using Morphisms.Attestation.Verify.Snp;
using Morphisms.Kms.Functions;
using Morphisms.Kms.Http;
using Morphisms.Kms.Pki;

namespace Morphisms.Kms.Attest;

/// <summary>
/// A well-formed <c>auth/attest/login</c> request. Everything that can be judged without trusting anything is
/// judged here (encodings, evidence structure, CSR signature), so malformed input is a 400 that names the field
/// and never spends the nonce; only well-formed requests reach the checks that answer 403.
/// </summary>
internal sealed record LoginRequest
{
    private const int MaxEvidenceBytes = 64 * 1024;
    private const int MaxEndorsementBytes = 512 * 1024;
    private const int MaxCsrChars = 16 * 1024;

    /// <summary>The function the instance claims to be.</summary>
    public required string Function { get; init; }

    /// <summary>The evidence format.</summary>
    public required TeeType Tee { get; init; }

    /// <summary>The raw report or quote.</summary>
    public required byte[] Evidence { get; init; }

    /// <summary>SNP: the VCEK (chain) sent as endorsements, or null.</summary>
    public SnpEndorsements? SnpEndorsements { get; init; }

    /// <summary>SGX/TDX: the collateral bundle sent as endorsements, or null.</summary>
    public DcapCollateral? Collateral { get; init; }

    /// <summary>The challenge nonce, <see cref="ChallengeStore.NonceBytes"/> bytes (not yet authenticated).</summary>
    public required byte[] Nonce { get; init; }

    /// <summary>The CSR for the key generated in the TEE (its self-signature verified).</summary>
    public required CertificateRequest Csr { get; init; }

    /// <summary>The DER SubjectPublicKeyInfo of the CSR's key: what the evidence must bind.</summary>
    public required byte[] CsrSpki { get; init; }

    /// <summary>The TEE type as sent, for metrics even when the request is refused as malformed.</summary>
    public static string TeeLabel(Fields f)
    {
        try
        {
            return TeeTypes.TryParse(f.String("tee"), out var tee) ? tee.ToWireName() : "unknown";
        }
        catch (KmsException)
        {
            return "unknown";
        }
    }

    /// <summary>Validates the request body; every problem is a 400 naming the parameter.</summary>
    public static LoginRequest Parse(Fields f)
    {
        var functionName = f.RequiredString("function");
        try
        {
            FunctionRegistry.ValidName(functionName);
        }
        catch (KmsException)
        {
            throw Invalid("function", "a function name (1-63 lowercase letters, digits and '-')");
        }

        if (!TeeTypes.TryParse(f.RequiredString("tee"), out var tee))
        {
            throw Invalid("tee", "snp, sgx or tdx");
        }

        var evidence = Base64(f, "evidence", MaxEvidenceBytes) ?? throw KmsException.BadRequest("missing required parameter 'evidence'");
        CheckEvidence(tee, evidence);
        var endorsements = Base64(f, "endorsements", MaxEndorsementBytes);
        var (snpEndorsements, collateral) = endorsements is null ? (null, null) : ParseEndorsements(tee, endorsements);
        var nonce = Base64(f, "nonce", 64) ?? throw KmsException.BadRequest("missing required parameter 'nonce'");
        if (nonce.Length != ChallengeStore.NonceBytes)
        {
            throw Invalid("nonce", $"the {ChallengeStore.NonceBytes}-byte nonce from auth/attest/challenge, base64");
        }

        var csr = ParseCsr(f.RequiredString("csr"));
        return new LoginRequest
        {
            Function = functionName,
            Tee = tee,
            Evidence = evidence,
            SnpEndorsements = snpEndorsements,
            Collateral = collateral,
            Nonce = nonce,
            Csr = csr,
            CsrSpki = csr.PublicKey.ExportSubjectPublicKeyInfo(),
        };
    }

    private static void CheckEvidence(TeeType tee, byte[] evidence)
    {
        try
        {
            _ = EvidenceVerifier.Parse(tee, evidence);
        }
        catch (Exception e) when (e is FormatException or ArgumentException)
        {
            throw Invalid("evidence", $"a well-formed {tee.ToWireName()} {(tee == TeeType.Snp ? "report" : "quote")} ({e.Message})");
        }
    }

    private static (SnpEndorsements?, DcapCollateral?) ParseEndorsements(TeeType tee, byte[] bytes)
    {
        try
        {
            return tee == TeeType.Snp
                ? (SnpEndorsements.Load(bytes), null)
                : (null, CollateralBundle.Parse(bytes, origin: "login endorsements"));
        }
        catch (Exception e) when (e is FormatException or ArgumentException or CryptographicException)
        {
            throw Invalid("endorsements", tee == TeeType.Snp
                ? $"the VCEK or VLEK certificate (DER or PEM, optionally with its chain), base64 ({e.Message})"
                : $"a DCAP collateral bundle (JSON), base64 ({e.Message})");
        }
    }

    private static CertificateRequest ParseCsr(string pem)
    {
        if (pem.Length > MaxCsrChars)
        {
            throw Invalid("csr", $"a PEM certificate request of at most {MaxCsrChars} characters");
        }

        CertificateRequest csr;
        try
        {
            // Loading checks the CSR's self-signature: proof that the requester holds the private key. A key on a
            // curve the platform does not know fails the import with PlatformNotSupportedException.
            csr = CertificateRequest.LoadSigningRequestPem(pem, HashAlgorithmName.SHA256, CertificateRequestLoadOptions.Default);
        }
        catch (Exception e) when (e is CryptographicException or ArgumentException or FormatException or PlatformNotSupportedException)
        {
            throw Invalid("csr", "a PEM PKCS#10 certificate request with a valid signature");
        }

        if (!AcceptableKey(csr.PublicKey))
        {
            throw Invalid("csr", "a request for an ECDSA P-256 or P-384 key, or an RSA key of 2048-8192 bits");
        }

        return csr;
    }

    private static bool AcceptableKey(PublicKey key)
    {
        try
        {
            // Loading the CSR has just imported the key once to check its signature: the curve is read, not imported again.
            if (key.Oid.Value == PkiCertificates.EcPublicKeyOid)
            {
                return PkiCertificates.NamedCurveOid(key) is PkiCertificates.P256CurveOid or PkiCertificates.P384CurveOid;
            }

            using var rsa = key.GetRSAPublicKey();
            return rsa is { KeySize: >= 2048 and <= 8192 };
        }
        catch (CryptographicException)
        {
            return false;
        }
    }

    private static byte[]? Base64(Fields f, string name, int maxBytes)
    {
        var text = f.String(name);
        if (string.IsNullOrEmpty(text))
        {
            return null;
        }

        var buffer = new byte[Math.Min(maxBytes + 3, text.Length)];
        if (text.Length > (maxBytes + 2) / 3 * 4 || !Convert.TryFromBase64String(text, buffer, out var written) || written > maxBytes)
        {
            throw Invalid(name, $"base64 of at most {maxBytes} bytes");
        }

        return buffer[..written];
    }

    private static KmsException Invalid(string name, string expected) =>
        KmsException.BadRequest($"invalid value for parameter '{name}': expected {expected}");
}
