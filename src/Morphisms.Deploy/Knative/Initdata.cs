using System.IO.Compression;
using System.Security.Cryptography;
using System.Text;

namespace Morphisms.Deploy.Knative;

/// <summary>
/// A Confidential Containers <em>initdata</em> document for a Kata pod: TOML with <c>version</c>, <c>algorithm</c> and
/// a <c>[data]</c> table of named files. Kata hashes the document with <c>algorithm</c> and the hypervisor puts the
/// digest into SNP HOST_DATA (SHA-256, 32 bytes) or TDX MRCONFIGID (SHA-384, 48 bytes), so the hardware report
/// commits to it; the pod carries it gzip-compressed and base64-encoded in <see cref="Annotation"/>.
/// </summary>
public static class Initdata
{
    /// <summary>The pod annotation Kata reads initdata from.</summary>
    public const string Annotation = "io.katacontainers.config.hypervisor.cc_init_data";

    /// <summary>The <c>[data]</c> entry that carries Morphisms' launch configuration.</summary>
    public const string MorphEntry = "morph.toml";

    /// <summary>The <c>[data]</c> entry that carries the Kata agent policy (<see cref="AgentPolicy"/>), which the agent enforces.</summary>
    public const string PolicyEntry = "policy.rego";

    /// <summary>
    /// Builds a function's TOML document: its launch configuration (<see cref="MorphEntry"/>) and the agent policy
    /// <paramref name="policy"/> (<see cref="PolicyEntry"/>). Values are ours (validated URL, hex, DNS label, digest-pinned image).
    /// </summary>
    /// <exception cref="ArgumentException">The policy holds something a TOML literal string cannot carry.</exception>
    public static string Document(ExportRequest request, string policy)
    {
        var morph = new StringBuilder();
        morph.Append("function = ").Append(Toml(request.Function.Name)).Append('\n');
        morph.Append("kms_url = ").Append(Toml(request.Kms.AbsoluteUri)).Append('\n');
        morph.Append("kms_ca_sha256 = ").Append(Toml(Convert.ToHexStringLower(request.KmsCaSha256))).Append('\n');
        morph.Append("image = ").Append(Toml(request.Image)).Append('\n');
        return Document(request.Tee, [(MorphEntry, morph.ToString()), (PolicyEntry, policy)]);
    }

    /// <summary>
    /// Builds a TOML document whose <c>[data]</c> table holds <paramref name="entries"/> (name, text) as multi-line
    /// literal strings, hashed with SHA-384 for TDX and SHA-256 otherwise.
    /// </summary>
    /// <exception cref="ArgumentException">An entry holds <c>'''</c> or a control character a TOML literal string cannot carry.</exception>
    public static string Document(ExportTee tee, IReadOnlyList<(string Name, string Content)> entries)
    {
        ArgumentNullException.ThrowIfNull(entries);
        var text = new StringBuilder();
        text.Append("version = \"0.1.0\"\n");
        text.Append("algorithm = \"").Append(Algorithm(tee)).Append("\"\n\n");
        text.Append("[data]\n");
        foreach (var (name, content) in entries)
        {
            // A literal string ends at the first ''' and admits no control character but tab and newline: refuse rather
            // than write a document that parses into something else.
            if (content.Contains("'''", StringComparison.Ordinal) || content.Any(c => char.IsControl(c) && c is not ('\t' or '\n')))
            {
                throw new ArgumentException($"initdata entry {name}: a value holds ''' or a control character, which initdata cannot carry");
            }

            text.Append(Toml(name)).Append(" = '''\n").Append(content);
            text.Append(content.EndsWith('\n') ? "" : "\n").Append("'''\n");
        }

        return text.ToString();
    }

    /// <summary>The initdata hash algorithm for <paramref name="tee"/>, as the document names it: <c>sha384</c> for TDX, else <c>sha256</c>.</summary>
    public static string Algorithm(ExportTee tee) => tee == ExportTee.Tdx ? "sha384" : "sha256";

    /// <summary>The report field Kata puts the initdata digest in: <c>MRCONFIGID</c> for TDX, else SNP's <c>HOST_DATA</c>.</summary>
    public static string LaunchField(ExportTee tee) => tee == ExportTee.Tdx ? "MRCONFIGID" : "HOST_DATA";

    /// <summary>The digest the report carries: SHA-256 (SNP HOST_DATA) or SHA-384 (TDX MRCONFIGID) of the document's UTF-8 bytes.</summary>
    public static byte[] Digest(string document, ExportTee tee)
    {
        var bytes = Encoding.UTF8.GetBytes(document);
        return tee == ExportTee.Tdx ? SHA384.HashData(bytes) : SHA256.HashData(bytes);
    }

    /// <summary>The annotation value: base64 of the gzip-compressed document.</summary>
    public static string Encode(string document)
    {
        using var buffer = new MemoryStream();
        using (var gzip = new GZipStream(buffer, CompressionLevel.SmallestSize, leaveOpen: true))
        {
            gzip.Write(Encoding.UTF8.GetBytes(document));
        }

        return Convert.ToBase64String(buffer.ToArray());
    }

    /// <summary>Decodes an annotation value back into the document (the inverse of <see cref="Encode"/>).</summary>
    public static string Decode(string annotation)
    {
        using var gzip = new GZipStream(new MemoryStream(Convert.FromBase64String(annotation)), CompressionMode.Decompress);
        using var reader = new StreamReader(gzip, Encoding.UTF8);
        return reader.ReadToEnd();
    }

    // A TOML basic string; JSON escaping is a subset TOML accepts for these characters.
    private static string Toml(string value) => System.Text.Json.JsonSerializer.Serialize(value);
}
