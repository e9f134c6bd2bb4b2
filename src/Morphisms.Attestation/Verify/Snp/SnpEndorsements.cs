using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;
using System.Text;

namespace Morphisms.Attestation.Verify.Snp;

/// <summary>
/// What comes with an SEV-SNP report to prove it: the VCEK or VLEK certificate, optionally the
/// intermediate (ASK/ASVK) and root (ARK) the platform or cloud supplied, and optionally an AMD CRL.
/// Supplied certificates are only hints: the verifier trusts nothing but its configured anchors.
/// </summary>
public sealed class SnpEndorsements
{
    /// <summary>
    /// Upper bound on the certificates one PEM may hold (a chain is three: VCEK or VLEK, ASK or ASVK, ARK), so a hostile
    /// login cannot make the KMS parse thousands.
    /// </summary>
    public const int MaxCertificates = 8;

    /// <summary>Creates endorsements from certificates already loaded.</summary>
    /// <param name="keyCertificate">The VCEK or VLEK certificate.</param>
    /// <param name="chain">Other certificates supplied with the evidence (ASK/ASVK, ARK), in any order.</param>
    /// <param name="crl">An AMD CRL for the product, if one was supplied.</param>
    public SnpEndorsements(X509Certificate2 keyCertificate, IEnumerable<X509Certificate2>? chain = null, CertificateRevocationList? crl = null)
    {
        KeyCertificate = keyCertificate;
        Chain = chain?.ToList() ?? [];
        Crl = crl;
    }

    /// <summary>The VCEK or VLEK certificate whose key signed the report.</summary>
    public X509Certificate2 KeyCertificate { get; }

    /// <summary>The intermediate and root certificates supplied with the evidence (possibly none).</summary>
    public IReadOnlyList<X509Certificate2> Chain { get; }

    /// <summary>The AMD CRL supplied with the evidence, or null.</summary>
    public CertificateRevocationList? Crl { get; }

    /// <summary>
    /// Loads endorsements from bytes. <paramref name="keyCertificate"/> is DER or PEM; a PEM may hold
    /// the whole chain (as Azure serves it: VCEK, ASK, ARK). <paramref name="chain"/> is PEM or DER
    /// (e.g. AMD KDS <c>cert_chain</c>: ASK then ARK); <paramref name="crl"/> is DER or PEM.
    /// </summary>
    /// <exception cref="EvidenceFormatException">A certificate or the CRL cannot be read.</exception>
    public static SnpEndorsements Load(byte[] keyCertificate, byte[]? chain = null, byte[]? crl = null)
    {
        var certificates = ReadCertificates(keyCertificate, "vcek");
        var leaf = certificates.FirstOrDefault(IsKeyCertificate) ?? certificates[0];
        var others = certificates.Where(c => !ReferenceEquals(c, leaf)).ToList();
        if (chain is not null)
        {
            others.AddRange(ReadCertificates(chain, "cert_chain"));
        }

        return new SnpEndorsements(leaf, others, crl is null ? null : CertificateRevocationList.Parse(crl));
    }

    /// <summary>Loads endorsements from files; see <see cref="Load"/> for the accepted formats.</summary>
    public static SnpEndorsements LoadFiles(string keyCertificatePath, string? chainPath = null, string? crlPath = null) =>
        Load(
            File.ReadAllBytes(keyCertificatePath),
            chainPath is null ? null : File.ReadAllBytes(chainPath),
            crlPath is null ? null : File.ReadAllBytes(crlPath));

    private static bool IsKeyCertificate(X509Certificate2 certificate) =>
        certificate.GetNameInfo(X509NameType.SimpleName, forIssuer: false) is "SEV-VCEK" or "SEV-VLEK";

    private static List<X509Certificate2> ReadCertificates(byte[] bytes, string what)
    {
        try
        {
            if (LooksLikePem(bytes))
            {
                var certificates = new List<X509Certificate2>();
                var rest = Encoding.ASCII.GetString(bytes).AsSpan();
                while (PemEncoding.TryFind(rest, out var fields))
                {
                    if (rest[fields.Label].SequenceEqual("CERTIFICATE"))
                    {
                        // Counted before each is parsed, so the bound holds on the work, not just on what is kept.
                        if (certificates.Count == MaxCertificates)
                        {
                            throw new EvidenceFormatException(what, $"the PEM holds more than {MaxCertificates} certificates (a chain is VCEK or VLEK, ASK or ASVK, ARK)");
                        }

                        // TryFind accepted the block, so its base64 decodes.
                        certificates.Add(UntrustedCertificate.Load(Convert.FromBase64String(rest[fields.Base64Data].ToString())));
                    }

                    rest = rest[fields.Location.End..];
                }

                return certificates.Count > 0 ? certificates : throw new EvidenceFormatException(what, "the PEM holds no CERTIFICATE block");
            }

            return [UntrustedCertificate.Load(bytes)];
        }
        catch (CryptographicException e)
        {
            throw new EvidenceFormatException(what, $"not a DER or PEM X.509 certificate ({e.Message})");
        }
    }

    private static bool LooksLikePem(byte[] bytes)
    {
        var start = bytes.AsSpan().TrimStart("\r\n\t "u8);
        return start.StartsWith("-----BEGIN"u8);
    }
}
