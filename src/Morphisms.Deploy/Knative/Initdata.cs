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

    /// <summary>Builds the TOML document. Values are ours (validated URL, hex, DNS label, digest-pinned image).</summary>
    public static string Document(ExportRequest request)
    {
        var algorithm = request.Tee == ExportTee.Tdx ? "sha384" : "sha256";
        var text = new StringBuilder();
        text.Append("version = \"0.1.0\"\n");
        text.Append("algorithm = \"").Append(algorithm).Append("\"\n\n");
        text.Append("[data]\n");
        text.Append('"').Append(MorphEntry).Append("\" = '''\n");
        text.Append("function = ").Append(Toml(request.Function.Name)).Append('\n');
        text.Append("kms_url = ").Append(Toml(request.Kms.AbsoluteUri)).Append('\n');
        text.Append("kms_ca_sha256 = ").Append(Toml(Convert.ToHexStringLower(request.KmsCaSha256))).Append('\n');
        text.Append("image = ").Append(Toml(request.Image)).Append('\n');
        text.Append("'''\n");
        return text.ToString();
    }

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
