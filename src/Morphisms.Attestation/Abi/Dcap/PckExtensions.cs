using System.Formats.Asn1;
using System.Security.Cryptography.X509Certificates;

namespace Morphisms.Attestation.Abi.Dcap;

/// <summary>
/// Intel's SGX extension of a PCK certificate (OID 1.2.840.113741.1.13.1): what Intel certified about
/// the platform — its FMSPC, the TCB component SVNs and PCESVN the TCB level is matched against, and
/// the PCE identity. Unknown entries are skipped, so newer certificates still parse.
/// </summary>
public sealed record PckExtensions
{
    /// <summary>The SGX extensions OID.</summary>
    public const string Oid = "1.2.840.113741.1.13.1";

    /// <summary>PPID, 16 bytes.</summary>
    public required ReadOnlyMemory<byte> Ppid { get; init; }

    /// <summary>The 16 SGX TCB component SVNs (sgxtcbcomp01svn … sgxtcbcomp16svn).</summary>
    public required ReadOnlyMemory<byte> SgxTcbComponents { get; init; }

    /// <summary>PCESVN.</summary>
    public required ushort PceSvn { get; init; }

    /// <summary>CPUSVN as certified, 16 bytes.</summary>
    public required ReadOnlyMemory<byte> CpuSvn { get; init; }

    /// <summary>PCE-ID, 2 bytes.</summary>
    public required ReadOnlyMemory<byte> PceId { get; init; }

    /// <summary>FMSPC, 6 bytes (family-model-stepping-platform-customSKU; selects the TCB info).</summary>
    public required ReadOnlyMemory<byte> Fmspc { get; init; }

    /// <summary>SGX type.</summary>
    public required SgxType SgxType { get; init; }

    /// <summary>Platform instance ID, 16 bytes (Platform-CA certificates only).</summary>
    public ReadOnlyMemory<byte>? PlatformInstanceId { get; init; }

    /// <summary>Platform configuration (Platform-CA certificates only).</summary>
    public PckPlatformConfiguration? Configuration { get; init; }

    /// <summary>FMSPC as 12 lowercase hex digits.</summary>
    public string FmspcHex => Hex.Of(Fmspc);

    /// <summary>Reads the extension from a PCK certificate.</summary>
    /// <exception cref="EvidenceFormatException">The certificate has no SGX extension or it is malformed.</exception>
    public static PckExtensions FromCertificate(X509Certificate2 pck)
    {
        var extension = pck.Extensions[Oid]
            ?? throw new EvidenceFormatException("pck.sgx_extensions", $"PCK certificate {pck.Subject} has no SGX extension ({Oid})");
        return Parse(extension.RawData);
    }

    /// <summary>Parses the DER value of the SGX extension.</summary>
    /// <exception cref="EvidenceFormatException">A required entry is missing or malformed.</exception>
    public static PckExtensions Parse(ReadOnlyMemory<byte> der)
    {
        try
        {
            return ParseDer(der);
        }
        catch (AsnContentException e)
        {
            throw new EvidenceFormatException("pck.sgx_extensions", $"malformed DER ({e.Message})");
        }
    }

    private static PckExtensions ParseDer(ReadOnlyMemory<byte> der)
    {
        var outer = new AsnReader(der, AsnEncodingRules.DER);
        var entries = outer.ReadSequence();
        outer.ThrowIfNotEmpty();

        ReadOnlyMemory<byte>? ppid = null, pceId = null, fmspc = null, instanceId = null;
        SgxType? sgxType = null;
        TcbEntry? tcb = null;
        PckPlatformConfiguration? configuration = null;
        while (entries.HasData)
        {
            var entry = entries.ReadSequence();
            var oid = entry.ReadObjectIdentifier();
            switch (oid)
            {
                case Oid + ".1": ppid = ReadOctets(entry, "ppid", 16); break;
                case Oid + ".2": tcb = ReadTcb(entry.ReadSequence()); break;
                case Oid + ".3": pceId = ReadOctets(entry, "pceid", 2); break;
                case Oid + ".4": fmspc = ReadOctets(entry, "fmspc", 6); break;
                case Oid + ".5": sgxType = ReadSgxType(entry); break;
                case Oid + ".6": instanceId = ReadOctets(entry, "platform_instance_id", 16); break;
                case Oid + ".7": configuration = ReadConfiguration(entry.ReadSequence()); break;
                default: entry.ReadEncodedValue(); break;
            }

            entry.ThrowIfNotEmpty();
        }

        return new PckExtensions
        {
            Ppid = ppid ?? throw Missing("ppid", ".1"),
            SgxTcbComponents = tcb?.Components ?? throw Missing("tcb", ".2"),
            PceSvn = tcb.PceSvn,
            CpuSvn = tcb.CpuSvn,
            PceId = pceId ?? throw Missing("pceid", ".3"),
            Fmspc = fmspc ?? throw Missing("fmspc", ".4"),
            SgxType = sgxType ?? throw Missing("sgx_type", ".5"),
            PlatformInstanceId = instanceId,
            Configuration = configuration,
        };
    }

    private sealed record TcbEntry(byte[] Components, ushort PceSvn, ReadOnlyMemory<byte> CpuSvn);

    private static TcbEntry ReadTcb(AsnReader tcb)
    {
        var components = new byte[16];
        var seen = new bool[16];
        ushort? pceSvn = null;
        ReadOnlyMemory<byte>? cpuSvn = null;
        while (tcb.HasData)
        {
            var item = tcb.ReadSequence();
            var oid = item.ReadObjectIdentifier();
            var prefix = Oid + ".2.";
            if (!oid.StartsWith(prefix, StringComparison.Ordinal) || !int.TryParse(oid.AsSpan(prefix.Length), out var index))
            {
                item.ReadEncodedValue();
            }
            else if (index is >= 1 and <= 16)
            {
                components[index - 1] = (byte)ReadBoundedInteger(item, $"tcb.sgxtcbcomp{index:00}svn", byte.MaxValue);
                seen[index - 1] = true;
            }
            else if (index == 17)
            {
                pceSvn = (ushort)ReadBoundedInteger(item, "tcb.pcesvn", ushort.MaxValue);
            }
            else if (index == 18)
            {
                cpuSvn = ReadOctets(item, "tcb.cpusvn", 16);
            }
            else
            {
                item.ReadEncodedValue();
            }

            item.ThrowIfNotEmpty();
        }

        var missing = Array.IndexOf(seen, false);
        if (missing >= 0)
        {
            throw Missing($"tcb.sgxtcbcomp{missing + 1:00}svn", $".2.{missing + 1}");
        }

        return new TcbEntry(components, pceSvn ?? throw Missing("tcb.pcesvn", ".2.17"), cpuSvn ?? throw Missing("tcb.cpusvn", ".2.18"));
    }

    private static PckPlatformConfiguration ReadConfiguration(AsnReader configuration)
    {
        bool? dynamic = null, cached = null, smt = null;
        while (configuration.HasData)
        {
            var item = configuration.ReadSequence();
            var oid = item.ReadObjectIdentifier();
            switch (oid)
            {
                case Oid + ".7.1": dynamic = item.ReadBoolean(); break;
                case Oid + ".7.2": cached = item.ReadBoolean(); break;
                case Oid + ".7.3": smt = item.ReadBoolean(); break;
                default: item.ReadEncodedValue(); break;
            }
        }

        return new PckPlatformConfiguration(dynamic, cached, smt);
    }

    private static SgxType ReadSgxType(AsnReader entry)
    {
        var value = entry.ReadEnumeratedBytes();
        if (value.Length != 1 || value.Span[0] > (byte)SgxType.ScalableWithIntegrity)
        {
            throw new EvidenceFormatException("pck.sgx_extensions.sgx_type", $"unknown SGX type {Hex.Of(value.Span)}");
        }

        return (SgxType)value.Span[0];
    }

    private static ReadOnlyMemory<byte> ReadOctets(AsnReader entry, string name, int length)
    {
        var value = entry.ReadOctetString();
        if (value.Length != length)
        {
            throw new EvidenceFormatException($"pck.sgx_extensions.{name}", $"must be {length} bytes, got {value.Length}");
        }

        return value;
    }

    private static int ReadBoundedInteger(AsnReader entry, string name, int max)
    {
        if (!entry.TryReadInt32(out var value) || value < 0 || value > max)
        {
            throw new EvidenceFormatException($"pck.sgx_extensions.{name}", $"must be an integer in 0..{max}");
        }

        return value;
    }

    private static EvidenceFormatException Missing(string name, string arc) =>
        new($"pck.sgx_extensions.{name}", $"missing (OID {Oid}{arc})");
}
