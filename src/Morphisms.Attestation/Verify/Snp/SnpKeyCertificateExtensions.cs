using System.Formats.Asn1;
using System.Security.Cryptography.X509Certificates;
using System.Text;
using Morphisms.Attestation.Abi.Snp;

namespace Morphisms.Attestation.Verify.Snp;

/// <summary>
/// The AMD KDS extensions of a VCEK or VLEK certificate (OID arc 1.3.6.1.4.1.3704.1): the TCB the key
/// is certified for, the chip it belongs to (VCEK) or the cloud provider it was issued to (VLEK).
/// Both encodings AMD has used are read: values wrapped in DER (INTEGER, IA5String, OCTET STRING) and
/// the older raw bytes (notably a bare 64-byte hwID).
/// </summary>
public sealed record SnpKeyCertificateExtensions
{
    /// <summary>The arc under which AMD's KDS defines its extensions.</summary>
    public const string OidArc = "1.3.6.1.4.1.3704.1.";

    private const string StructVersionOid = OidArc + "1";
    private const string ProductNameOid = OidArc + "2";
    private const string BootloaderOid = OidArc + "3.1";
    private const string TeeOid = OidArc + "3.2";
    private const string SnpOid = OidArc + "3.3";
    private const string Spl4Oid = OidArc + "3.4";
    private const string Spl5Oid = OidArc + "3.5";
    private const string Spl6Oid = OidArc + "3.6";
    private const string Spl7Oid = OidArc + "3.7";
    private const string MicrocodeOid = OidArc + "3.8";
    private const string FmcOid = OidArc + "3.9";
    private const string HardwareIdOid = OidArc + "4";
    private const string CspIdOid = OidArc + "5";

    /// <summary>Version of AMD's extension structure.</summary>
    public int? StructVersion { get; init; }

    /// <summary>productName, e.g. <c>Milan-B0</c> (VCEK) or <c>Milan</c> (VLEK).</summary>
    public string? ProductName { get; init; }

    /// <summary>The product line the product name names, or null.</summary>
    public string? ProductLine => SnpProducts.FromProductName(ProductName);

    /// <summary>Certified bootloader SPL (blSPL).</summary>
    public byte BootloaderSpl { get; init; }

    /// <summary>Certified PSP OS SPL (teeSPL).</summary>
    public byte TeeSpl { get; init; }

    /// <summary>Certified SNP firmware SPL (snpSPL).</summary>
    public byte SnpSpl { get; init; }

    /// <summary>Certified microcode SPL (ucodeSPL).</summary>
    public byte MicrocodeSpl { get; init; }

    /// <summary>Certified FMC SPL (fmcSPL, Turin and later), or null when absent.</summary>
    public byte? FmcSpl { get; init; }

    /// <summary>The reserved SPL4–SPL7 values (Milan/Genoa TCB bytes 2–5); zero when absent.</summary>
    public ReadOnlyMemory<byte> ReservedSpls { get; init; } = new byte[4];

    /// <summary>The chip's hwID (VCEK only): 64 bytes, or 8 on Turin.</summary>
    public ReadOnlyMemory<byte>? HardwareId { get; init; }

    /// <summary>The cloud provider the VLEK was issued to (cspID), or null for a VCEK.</summary>
    public string? CspId { get; init; }

    /// <summary>Reads the extensions of <paramref name="certificate"/>.</summary>
    /// <exception cref="EvidenceFormatException">An extension is missing, duplicated or malformed.</exception>
    public static SnpKeyCertificateExtensions Parse(X509Certificate2 certificate)
    {
        var values = new Dictionary<string, byte[]>(StringComparer.Ordinal);
        foreach (var extension in certificate.Extensions)
        {
            var oid = extension.Oid?.Value;
            if (oid is null || !oid.StartsWith(OidArc, StringComparison.Ordinal))
            {
                continue;
            }

            if (!values.TryAdd(oid, extension.RawData))
            {
                throw new EvidenceFormatException($"vcek extension {oid}", "appears more than once");
            }
        }

        return new SnpKeyCertificateExtensions
        {
            StructVersion = values.TryGetValue(StructVersionOid, out var sv) ? ReadSpl(sv, "structVersion") : null,
            ProductName = values.TryGetValue(ProductNameOid, out var pn) ? ReadString(pn, "productName") : null,
            BootloaderSpl = RequiredSpl(values, BootloaderOid, "blSPL"),
            TeeSpl = RequiredSpl(values, TeeOid, "teeSPL"),
            SnpSpl = RequiredSpl(values, SnpOid, "snpSPL"),
            MicrocodeSpl = RequiredSpl(values, MicrocodeOid, "ucodeSPL"),
            FmcSpl = values.TryGetValue(FmcOid, out var fmc) ? ReadSpl(fmc, "fmcSPL") : null,
            ReservedSpls = new[]
            {
                OptionalSpl(values, Spl4Oid, "spl4"),
                OptionalSpl(values, Spl5Oid, "spl5"),
                OptionalSpl(values, Spl6Oid, "spl6"),
                OptionalSpl(values, Spl7Oid, "spl7"),
            },
            HardwareId = values.TryGetValue(HardwareIdOid, out var hw) ? (ReadOnlyMemory<byte>?)ReadHardwareId(hw) : null,
            CspId = values.TryGetValue(CspIdOid, out var csp) ? ReadString(csp, "cspID") : null,
        };
    }

    /// <summary>The TCB the certificate certifies, in the given layout.</summary>
    public TcbVersion ToTcbVersion(TcbLayout layout)
    {
        Span<byte> b = stackalloc byte[8];
        b.Clear();
        if (layout == TcbLayout.Turin)
        {
            b[0] = FmcSpl ?? 0;
            b[1] = BootloaderSpl;
            b[2] = TeeSpl;
            b[3] = SnpSpl;
        }
        else
        {
            b[0] = BootloaderSpl;
            b[1] = TeeSpl;
            ReservedSpls.Span.CopyTo(b[2..6]);
            b[6] = SnpSpl;
        }

        b[7] = MicrocodeSpl;
        return TcbVersion.Read(b, layout);
    }

    /// <summary>
    /// Names every component where <paramref name="reportedTcb"/> differs from what the certificate
    /// certifies; empty when they are equal.
    /// </summary>
    public IReadOnlyList<string> DifferencesFrom(TcbVersion reportedTcb)
    {
        var differences = new List<string>();
        Compare("blSPL", reportedTcb.Bootloader, BootloaderSpl);
        Compare("teeSPL", reportedTcb.Tee, TeeSpl);
        Compare("snpSPL", reportedTcb.Snp, SnpSpl);
        Compare("ucodeSPL", reportedTcb.Microcode, MicrocodeSpl);
        if (reportedTcb.Layout == TcbLayout.Turin)
        {
            if (FmcSpl is null)
            {
                differences.Add("fmcSPL missing from the certificate");
            }
            else
            {
                Compare("fmcSPL", reportedTcb.Fmc ?? 0, FmcSpl.Value);
            }
        }
        else if (!reportedTcb.ReservedBytes.SequenceEqual(ReservedSpls.Span))
        {
            differences.Add($"spl4-7 report {Convert.ToHexStringLower(reportedTcb.ReservedBytes)} certificate {Convert.ToHexStringLower(ReservedSpls.Span)}");
        }

        return differences;

        void Compare(string name, byte reported, byte certified)
        {
            if (reported != certified)
            {
                differences.Add($"{name} report {reported} certificate {certified}");
            }
        }
    }

    private static byte RequiredSpl(Dictionary<string, byte[]> values, string oid, string name) =>
        values.TryGetValue(oid, out var value)
            ? ReadSpl(value, name)
            : throw new EvidenceFormatException($"vcek extension {name}", $"missing ({oid})");

    private static byte OptionalSpl(Dictionary<string, byte[]> values, string oid, string name) =>
        values.TryGetValue(oid, out var value) ? ReadSpl(value, name) : (byte)0;

    private static byte ReadSpl(byte[] value, string name)
    {
        if (value.Length == 1)
        {
            return value[0];
        }

        try
        {
            var reader = new AsnReader(value, AsnEncodingRules.DER);
            var number = reader.ReadInteger();
            reader.ThrowIfNotEmpty();
            if (number < 0 || number > 255)
            {
                throw new EvidenceFormatException($"vcek extension {name}", $"value {number} is not 0-255");
            }

            return (byte)number;
        }
        catch (AsnContentException e)
        {
            throw new EvidenceFormatException($"vcek extension {name}", $"not a DER INTEGER ({e.Message})");
        }
    }

    private static string ReadString(byte[] value, string name)
    {
        try
        {
            if (value.Length > 0 && value[0] is 0x16 or 0x0C or 0x13)
            {
                var reader = new AsnReader(value, AsnEncodingRules.DER);
                var text = reader.ReadCharacterString(reader.PeekTag().TagValue switch
                {
                    0x0C => UniversalTagNumber.UTF8String,
                    0x13 => UniversalTagNumber.PrintableString,
                    _ => UniversalTagNumber.IA5String,
                });
                reader.ThrowIfNotEmpty();
                return text;
            }
        }
        catch (AsnContentException e)
        {
            throw new EvidenceFormatException($"vcek extension {name}", $"not a DER string ({e.Message})");
        }

        if (value.Any(b => b is < 0x20 or > 0x7E))
        {
            throw new EvidenceFormatException($"vcek extension {name}", "neither a DER string nor printable ASCII");
        }

        return Encoding.ASCII.GetString(value);
    }

    private static byte[] ReadHardwareId(byte[] value)
    {
        // KDS long wrote the 64-byte hwID raw, without the OCTET STRING tag; newer certificates wrap it.
        if (value.Length == 64)
        {
            return value;
        }

        try
        {
            var reader = new AsnReader(value, AsnEncodingRules.DER);
            var octets = reader.ReadOctetString();
            reader.ThrowIfNotEmpty();
            if (octets.Length is 64 or 8)
            {
                return octets;
            }

            throw new EvidenceFormatException("vcek extension hwID", $"{octets.Length} bytes; expected 64 (or 8 on Turin)");
        }
        catch (AsnContentException) when (value.Length == 8)
        {
            return value;
        }
        catch (AsnContentException e)
        {
            throw new EvidenceFormatException("vcek extension hwID", $"neither 64 raw bytes nor a DER OCTET STRING ({e.Message})");
        }
    }
}
