using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;
using System.Text;

namespace Morphisms.Attestation.Abi.Dcap;

/// <summary>
/// Reads the PEM PCK certificate chain of certification data type 5 (leaf, PCK CA, root, in that
/// order as Intel's QE writes it; a terminating NUL is common and ignored).
/// </summary>
public static class PckCertificateChainPem
{
    /// <summary>Upper bound on certificates read, so a hostile quote cannot make us parse thousands.</summary>
    public const int MaxCertificates = 8;

    /// <summary>Parses every certificate in the PEM text, in order.</summary>
    /// <exception cref="EvidenceFormatException">No certificate, too many, or one that does not decode.</exception>
    public static IReadOnlyList<X509Certificate2> Parse(ReadOnlySpan<byte> pem)
    {
        var text = Encoding.Latin1.GetString(pem);
        var certificates = new List<X509Certificate2>();
        var rest = text.AsSpan();
        while (PemEncoding.TryFind(rest, out var fields))
        {
            if (rest[fields.Label].SequenceEqual("CERTIFICATE"))
            {
                if (certificates.Count == MaxCertificates)
                {
                    throw new EvidenceFormatException("pck_chain", $"more than {MaxCertificates} certificates");
                }

                var der = new byte[fields.DecodedDataLength];
                if (!Convert.TryFromBase64Chars(rest[fields.Base64Data], der, out _))
                {
                    throw new EvidenceFormatException("pck_chain", $"certificate {certificates.Count} is not valid base64");
                }

                try
                {
                    certificates.Add(UntrustedCertificate.Load(der));
                }
                catch (CryptographicException e)
                {
                    throw new EvidenceFormatException("pck_chain", $"certificate {certificates.Count} does not decode ({e.Message})");
                }
            }

            rest = rest[fields.Location.End..];
        }

        if (certificates.Count == 0)
        {
            throw new EvidenceFormatException("pck_chain", "no PEM certificate in the certification data");
        }

        return certificates;
    }
}
