using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;
using System.Text;
using Morphisms.Attestation.Verify;

namespace Morphisms.Attestation.Collateral;

/// <summary>
/// Decodes the many ways collateral tools write binary items: DER bytes, PEM, hex (Phala, PCCS) or
/// base64 strings, and certificate chains as concatenated PEM (possibly URL-encoded, as in Intel
/// PCS's issuer-chain headers).
/// </summary>
internal static class CollateralEncoding
{
    /// <summary>Decodes a string that holds a DER item as PEM, hex or base64.</summary>
    public static byte[] DecodeText(string text, string what)
    {
        var s = text.Trim();
        if (s.Length == 0)
        {
            throw new EvidenceFormatException(what, "empty");
        }

        if (s.StartsWith("-----BEGIN", StringComparison.Ordinal))
        {
            try
            {
                var fields = PemEncoding.Find(s);
                return Convert.FromBase64String(s[fields.Base64Data]);
            }
            catch (Exception e) when (e is ArgumentException or FormatException)
            {
                throw new EvidenceFormatException(what, "malformed PEM");
            }
        }

        // DER always starts with a SEQUENCE tag, "30" in hex; in base64 it would read "M…".
        if (s.Length % 2 == 0 && (s.StartsWith("30", StringComparison.Ordinal) || s.StartsWith("0x", StringComparison.OrdinalIgnoreCase))
            && s.Skip(s.StartsWith("0x", StringComparison.OrdinalIgnoreCase) ? 2 : 0).All(char.IsAsciiHexDigit))
        {
            return Hex.Parse(s, what);
        }

        try
        {
            return Convert.FromBase64String(s);
        }
        catch (FormatException)
        {
            throw new EvidenceFormatException(what, "neither PEM, hex nor base64");
        }
    }

    /// <summary>Decodes a binary file that may be DER or any text form <see cref="DecodeText"/> accepts.</summary>
    public static byte[] DecodeFile(byte[] content, string what)
    {
        if (content.Length > 0 && content[0] == 0x30)
        {
            return content;
        }

        return DecodeText(Encoding.ASCII.GetString(content), what);
    }

    /// <summary>Parses a CRL from DER or text.</summary>
    public static CertificateRevocationList ParseCrl(byte[] der, string what)
    {
        try
        {
            return CertificateRevocationList.Parse(der);
        }
        catch (EvidenceFormatException e)
        {
            throw new EvidenceFormatException(what, e.Message);
        }
    }

    /// <summary>Parses every certificate in concatenated PEM text (URL-decoding it first when needed).</summary>
    public static List<X509Certificate2> ParsePemCertificates(string text, string what) =>
        ParsePemCertificates(text, what, int.MaxValue, "");

    /// <summary>
    /// As <see cref="ParsePemCertificates(string, string)"/>, refusing (<see cref="EvidenceFormatException"/> with
    /// <paramref name="tooMany"/>) text with more than <paramref name="max"/> certificates before it parses one more.
    /// </summary>
    public static List<X509Certificate2> ParsePemCertificates(string text, string what, int max, string tooMany)
    {
        // Intel PCS sends chains URL-encoded ("-----BEGIN%20CERTIFICATE-----%0A…"); '%' never occurs in PEM.
        if (text.Contains('%'))
        {
            text = Uri.UnescapeDataString(text);
        }

        var certificates = new List<X509Certificate2>();
        var remaining = text.AsSpan();
        while (PemEncoding.TryFind(remaining, out var fields))
        {
            var label = remaining[fields.Label];
            if (label.SequenceEqual("CERTIFICATE"))
            {
                // Counted before each is parsed, so the bound holds on the work, not just on what is kept.
                if (certificates.Count >= max)
                {
                    throw new EvidenceFormatException(what, tooMany);
                }

                try
                {
                    certificates.Add(UntrustedCertificate.Load(Convert.FromBase64String(remaining[fields.Base64Data].ToString())));
                }
                catch (Exception e) when (e is CryptographicException or FormatException)
                {
                    throw new EvidenceFormatException(what, $"certificate {certificates.Count + 1} is malformed ({e.Message})");
                }
            }

            remaining = remaining[fields.Location.End.Value..];
        }

        if (certificates.Count == 0 && text.Trim().Length > 0)
        {
            throw new EvidenceFormatException(what, "no PEM certificate found");
        }

        return certificates;
    }

    /// <summary>Parses certificates from a file: PEM (one or many) or a single DER certificate.</summary>
    public static List<X509Certificate2> ParseCertificateFile(byte[] content, string what)
    {
        if (content.Length > 0 && content[0] == 0x30)
        {
            try
            {
                return [UntrustedCertificate.Load(content)];
            }
            catch (CryptographicException e)
            {
                throw new EvidenceFormatException(what, $"not a DER certificate ({e.Message})");
            }
        }

        return ParsePemCertificates(Encoding.ASCII.GetString(content), what);
    }

    /// <summary>True when <paramref name="content"/> holds a CRL rather than certificates (PEM label or DER structure).</summary>
    public static bool LooksLikeCrl(byte[] content)
    {
        if (content.Length > 0 && content[0] == 0x30)
        {
            try
            {
                X509CertificateLoader.LoadCertificate(content);
                return false;
            }
            catch (CryptographicException)
            {
                return true;
            }
        }

        var text = Encoding.ASCII.GetString(content);
        return text.Contains("-----BEGIN X509 CRL-----", StringComparison.Ordinal)
            || (!text.Contains("-----BEGIN CERTIFICATE-----", StringComparison.Ordinal) && !text.TrimStart().StartsWith('-'));
    }
}
