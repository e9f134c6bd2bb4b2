using System.IO.Compression;
using System.Security.Cryptography;
using System.Text;
using Morphisms.Agent.Evidence;
using Morphisms.Agent.Tests.Evidence;

namespace Morphisms.Agent.Tests.Fuzz;

/// <summary>
/// What the host hands the agent before anything is verified: the SNP extended-report certificate table (configfs-tsm's
/// auxblob, /dev/sev-guest's certificate buffer) and the Kata initdata document (an annotation or a file). Mutated, each
/// must be read or refused with the documented exception — never an index or overflow exception that kills morph-init.
/// </summary>
public sealed class EvidenceInputFuzzTests
{
    [Fact]
    public void Snp_certificate_table_is_read_or_refused_as_malformed()
    {
        FuzzSeed[] seeds =
        [
            Table("VCEK, ASK, ARK", [(SnpCertTable.Vcek, RandomNumberGenerator.GetBytes(1300)), (SnpCertTable.Ask, new byte[1600]), (SnpCertTable.Ark, new byte[1600])]),
            Table("VLEK only", [(SnpCertTable.Vlek, new byte[1200])]),
            Table("empty entry", [(SnpCertTable.Vcek, [])]),
        ];

        // Parse documents InvalidDataException; SigningKeyCertificate, what the providers call, wraps it in EvidenceException.
        Fuzzer.Run("SnpCertTable.Parse", seed: 0xA0C, iterations: 3000, seeds, Mutations.Bytes, bytes =>
        {
            _ = SnpCertTable.Parse(bytes).Count;
        }, typeof(InvalidDataException));
        Fuzzer.Run("SnpCertTable.SigningKeyCertificate", seed: 0xA0D, iterations: 1000, seeds, Mutations.Bytes, bytes =>
        {
            _ = SnpCertTable.SigningKeyCertificate(bytes)?.Length;
        }, typeof(EvidenceException));
    }

    /// <summary>Both encodings Kata uses: the TOML text itself, and the annotation's base64 of gzip (mutated inside the gzip too).</summary>
    [Fact]
    public void Kata_initdata_is_read_or_refused_as_malformed()
    {
        FuzzSeed[] seeds =
        [
            new("TOML", Encoding.UTF8.GetBytes(KataInitdataTests.Document(RandomNumberGenerator.GetBytes(32)))),
            new("TOML, sha512", Encoding.UTF8.GetBytes(KataInitdataTests.Document(RandomNumberGenerator.GetBytes(32), "sha512"))),
            new("annotation (base64 of gzip)", Encoding.ASCII.GetBytes(KataInitdataTests.Annotation(KataInitdataTests.Document(RandomNumberGenerator.GetBytes(32), "sha384")))),
        ];
        Fuzzer.Run("KataInitdata.Decode and Parse", seed: 0xA0E, iterations: 2500, seeds, (rng, seed) => seed.Name.StartsWith("annotation", StringComparison.Ordinal) && rng.Next(2) == 0
            ? InsideGzip(rng, seed)
            : Mutations.Bytes(rng, seed), bytes =>
        {
            var initdata = KataInitdata.Parse(KataInitdata.Decode(bytes));
            _ = (initdata.FieldValue(32), initdata.FieldValue(48), initdata.Kms.Host, initdata.Image);
        }, typeof(EvidenceException));

        // 16 MiB of zeros in a few KiB of gzip: the decoder stops at its bound instead of inflating it.
        var bomb = Assert.Throws<EvidenceException>(() => KataInitdata.Decode(Encoding.ASCII.GetBytes(Bomb())));
        Assert.Contains("exceeds", bomb.Message, StringComparison.Ordinal);
    }

    private static FuzzSeed Table(string name, IReadOnlyList<(Guid Guid, byte[] Data)> entries)
    {
        var table = SnpCertTable.Build(entries);
        var fields = Enumerable.Range(0, entries.Count + 1)
            .SelectMany(i => new WireField[] { new($"entry[{i}].offset", (i * 24) + 16, 4), new($"entry[{i}].length", (i * 24) + 20, 4) })
            .ToList();
        return new FuzzSeed(name, table, fields);
    }

    /// <summary>The annotation's gzip bytes mutated, then encoded again, so the mutation reaches the decompressor.</summary>
    private static Mutation InsideGzip(Random rng, FuzzSeed seed)
    {
        var gzip = Convert.FromBase64String(Encoding.ASCII.GetString(seed.Data));
        var inner = Mutations.Bytes(rng, new FuzzSeed(seed.Name, gzip));
        return new Mutation($"inside the gzip: {inner.Description}", Encoding.ASCII.GetBytes(Convert.ToBase64String(inner.Data)));
    }

    private static string Bomb()
    {
        using var buffer = new MemoryStream();
        using (var gzip = new GZipStream(buffer, CompressionLevel.SmallestSize, leaveOpen: true))
        {
            gzip.Write(new byte[16 * 1024 * 1024]);
        }

        return Convert.ToBase64String(buffer.ToArray());
    }
}
