using System.Buffers.Binary;

namespace Morphisms.Agent.Evidence;

/// <summary>
/// The SNP extended-report certificate table (GHCB spec, "SNP Extended Guest Request"; configfs-tsm's
/// <c>auxblob</c>): entries of GUID (16) ‖ offset (u32 LE) ‖ length (u32 LE), ended by an all-zero entry; offsets are
/// from the start of the table.
/// </summary>
public static class SnpCertTable
{
    /// <summary>The VCEK entry's GUID.</summary>
    public static readonly Guid Vcek = new("63da758d-e664-4564-adc5-f4b93be8accd");

    /// <summary>The VLEK entry's GUID.</summary>
    public static readonly Guid Vlek = new("a8074bc2-a25a-483e-aae6-39c045a0b8a1");

    /// <summary>The ASK entry's GUID.</summary>
    public static readonly Guid Ask = new("4ab7b379-bbac-4fe4-a02f-05aef327c782");

    /// <summary>The ARK entry's GUID.</summary>
    public static readonly Guid Ark = new("c0b406a4-a803-4952-9743-3fb6014cd0ae");

    private const int EntrySize = 24;

    /// <summary>Parses the table into GUID → certificate bytes; throws on entries pointing outside the table.</summary>
    public static IReadOnlyDictionary<Guid, byte[]> Parse(ReadOnlySpan<byte> table)
    {
        var entries = new Dictionary<Guid, byte[]>();
        for (var at = 0; ; at += EntrySize)
        {
            if (at + EntrySize > table.Length)
            {
                throw new InvalidDataException("SNP certificate table: no terminating zero entry");
            }

            var guid = new Guid(table.Slice(at, 16), bigEndian: false);
            var offset = BinaryPrimitives.ReadUInt32LittleEndian(table[(at + 16)..]);
            var length = BinaryPrimitives.ReadUInt32LittleEndian(table[(at + 20)..]);
            if (guid == Guid.Empty && offset == 0 && length == 0)
            {
                return entries;
            }

            if ((ulong)offset + length > (ulong)table.Length)
            {
                throw new InvalidDataException($"SNP certificate table: entry {guid} points outside the table");
            }

            entries[guid] = table.Slice((int)offset, (int)length).ToArray();
        }
    }

    /// <summary>Builds a table (tests, and hosts that hand out certificates separately).</summary>
    public static byte[] Build(IReadOnlyList<(Guid Guid, byte[] Data)> certificates)
    {
        var header = (certificates.Count + 1) * EntrySize;
        var table = new byte[header + certificates.Sum(c => c.Data.Length)];
        var offset = header;
        for (var i = 0; i < certificates.Count; i++)
        {
            var (guid, data) = certificates[i];
            guid.TryWriteBytes(table.AsSpan(i * EntrySize, 16), bigEndian: false, out _);
            BinaryPrimitives.WriteUInt32LittleEndian(table.AsSpan(i * EntrySize + 16), (uint)offset);
            BinaryPrimitives.WriteUInt32LittleEndian(table.AsSpan(i * EntrySize + 20), (uint)data.Length);
            data.CopyTo(table, offset);
            offset += data.Length;
        }

        return table;
    }

    /// <summary>The VCEK or VLEK from a table, or null when it carries neither.</summary>
    /// <exception cref="EvidenceException">The table (which the host supplies) is malformed.</exception>
    public static byte[]? SigningKeyCertificate(ReadOnlySpan<byte> table)
    {
        if (table.IsEmpty)
        {
            return null;
        }

        IReadOnlyDictionary<Guid, byte[]> entries;
        try
        {
            entries = Parse(table);
        }
        catch (InvalidDataException e)
        {
            throw new EvidenceException($"the host's SNP certificate table is malformed: {e.Message}", e);
        }

        return entries.TryGetValue(Vcek, out var vcek) ? vcek : entries.TryGetValue(Vlek, out var vlek) ? vlek : null;
    }
}
