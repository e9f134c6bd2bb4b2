using System.IO.Compression;
using System.Security.Cryptography;
using System.Text;
using Tomlyn;
using Tomlyn.Model;
using Tomlyn.Parsing;
using Tomlyn.Syntax;

namespace Morphisms.Agent.Evidence;

/// <summary>
/// A Confidential Containers <em>initdata</em> document as Kata hands it to a pod (the
/// <c>io.katacontainers.config.hypervisor.cc_init_data</c> annotation: gzip + base64 of a TOML document), and the
/// Morphisms launch configuration inside it (<c>[data]."morph.toml"</c>).
/// <para>
/// Kata hashes the document's bytes with its <c>algorithm</c> and the host stamps the digest, truncated or zero-padded
/// to the field, into SNP HOST_DATA (32 bytes) or TDX MRCONFIGID (48 bytes). The hardware report covers that field, so
/// the document may reach the agent through any channel the host controls (an environment variable from the pod's
/// annotation, a file): it is trusted only after <see cref="VerifyAgainst"/> finds its digest in the field the TEE
/// measured.
/// </para>
/// </summary>
public sealed class KataInitdata
{
    /// <summary>The <c>[data]</c> entry that carries Morphisms' launch configuration.</summary>
    public const string MorphEntry = "morph.toml";

    /// <summary>Larger documents are refused before hashing or parsing (Kata's own documents are a few KiB).</summary>
    public const int MaxDocumentBytes = 256 * 1024;

    private static readonly HashSet<string> MorphKeys = ["function", "kms_url", "kms_ca_sha256", "image"];

    private KataInitdata(byte[] document, string algorithm, string function, Uri kms, byte[] kmsCaSha256, string? image)
    {
        Document = document;
        Algorithm = algorithm;
        Function = function;
        Kms = kms;
        KmsCaSha256 = kmsCaSha256;
        Image = image;
    }

    /// <summary>The document's bytes exactly as hashed.</summary>
    public byte[] Document { get; }

    /// <summary><c>sha256</c>, <c>sha384</c> or <c>sha512</c>.</summary>
    public string Algorithm { get; }

    /// <summary><c>function</c> in <c>morph.toml</c>.</summary>
    public string Function { get; }

    /// <summary><c>kms_url</c> in <c>morph.toml</c>.</summary>
    public Uri Kms { get; }

    /// <summary><c>kms_ca_sha256</c> in <c>morph.toml</c>: the KMS CA pin, once the document is verified.</summary>
    public byte[] KmsCaSha256 { get; }

    /// <summary><c>image</c> in <c>morph.toml</c> (informational: the KMS, not the agent, judges the image).</summary>
    public string? Image { get; }

    /// <summary>
    /// Reads the document from <paramref name="source"/>: <c>env:NAME</c> (an environment variable, typically set from the
    /// pod annotation through the downward API) or a file path. The value is either the annotation's encoding (base64 of
    /// gzip) or the TOML text itself.
    /// </summary>
    /// <exception cref="EvidenceException">The source is missing or does not hold a valid document.</exception>
    public static KataInitdata Load(string source, Func<string, string?> environment)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(source);
        ArgumentNullException.ThrowIfNull(environment);
        byte[] raw;
        if (source.StartsWith("env:", StringComparison.Ordinal))
        {
            var name = source["env:".Length..];
            raw = Encoding.UTF8.GetBytes(environment(name) is { Length: > 0 } value
                ? value
                : throw new EvidenceException($"initdata: environment variable {name} is not set or empty"));
        }
        else
        {
            try
            {
                var info = new FileInfo(source);
                raw = info.Exists && info.Length > 4L * MaxDocumentBytes
                    ? throw new EvidenceException($"initdata: {source} is larger than {4 * MaxDocumentBytes} bytes")
                    : File.ReadAllBytes(source);
            }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException)
            {
                throw new EvidenceException($"initdata: cannot read {source}: {e.Message}", e);
            }
        }

        return Parse(Decode(raw));
    }

    /// <summary>The document bytes from either encoding: base64 of gzip (the annotation) or plain TOML.</summary>
    public static byte[] Decode(byte[] raw)
    {
        ArgumentNullException.ThrowIfNull(raw);
        var text = Encoding.ASCII.GetString(raw).Trim();
        var buffer = new byte[text.Length];
        if (!Convert.TryFromBase64String(text, buffer, out var length) || length < 2 || buffer[0] != 0x1f || buffer[1] != 0x8b)
        {
            return raw;
        }

        try
        {
            using var gzip = new GZipStream(new MemoryStream(buffer, 0, length), CompressionMode.Decompress);
            using var output = new MemoryStream();
            var chunk = new byte[16 * 1024];
            int read;
            while ((read = gzip.Read(chunk)) > 0)
            {
                // Bounded, so a small hostile annotation cannot inflate into gigabytes.
                if (output.Length + read > MaxDocumentBytes)
                {
                    throw new EvidenceException($"initdata: the decompressed document exceeds {MaxDocumentBytes} bytes");
                }

                output.Write(chunk, 0, read);
            }

            return output.ToArray();
        }
        catch (InvalidDataException e)
        {
            throw new EvidenceException($"initdata: the base64 value is not valid gzip: {e.Message}", e);
        }
    }

    /// <summary>Parses the TOML document and its <c>morph.toml</c> entry, strictly.</summary>
    /// <exception cref="EvidenceException">Naming the first problem found.</exception>
    public static KataInitdata Parse(byte[] document)
    {
        ArgumentNullException.ThrowIfNull(document);
        if (document.Length > MaxDocumentBytes)
        {
            throw new EvidenceException($"initdata: the document exceeds {MaxDocumentBytes} bytes");
        }

        var root = Toml(document, "the initdata document");
        if (RequiredString(root, "version", "the document") != "0.1.0")
        {
            throw new EvidenceException($"initdata: unsupported version '{root["version"]}' (expected 0.1.0)");
        }

        var algorithm = RequiredString(root, "algorithm", "the document");
        if (algorithm is not ("sha256" or "sha384" or "sha512"))
        {
            throw new EvidenceException($"initdata: unsupported algorithm '{algorithm}' (expected sha256, sha384 or sha512)");
        }

        if (!root.TryGetValue("data", out var dataValue) || dataValue is not TomlTable data)
        {
            throw new EvidenceException("initdata: no [data] table");
        }

        if (!data.TryGetValue(MorphEntry, out var entry) || entry is not string morphText)
        {
            throw new EvidenceException($"initdata: [data] has no \"{MorphEntry}\" string entry (was the document written by `morph export knative`?)");
        }

        var morph = Toml(Encoding.UTF8.GetBytes(morphText), MorphEntry);
        if (morph.Keys.FirstOrDefault(key => !MorphKeys.Contains(key)) is { } unknown)
        {
            throw new EvidenceException($"initdata: {MorphEntry} has unknown key '{unknown}'");
        }

        var function = RequiredString(morph, "function", MorphEntry);
        var kmsText = RequiredString(morph, "kms_url", MorphEntry);
        if (!Uri.TryCreate(kmsText, UriKind.Absolute, out var kms) || kms.Scheme != Uri.UriSchemeHttps)
        {
            throw new EvidenceException($"initdata: {MorphEntry} kms_url '{kmsText}' is not an https URL");
        }

        var pin = MeasuredPin.ParseHex(RequiredString(morph, "kms_ca_sha256", MorphEntry))
            ?? throw new EvidenceException($"initdata: {MorphEntry} kms_ca_sha256 is not 64 hex digits");
        var image = morph.TryGetValue("image", out var imageValue) ? imageValue as string ?? throw new EvidenceException($"initdata: {MorphEntry} image is not a string") : null;
        return new KataInitdata(document, algorithm, function, kms, pin, image);
    }

    /// <summary>The digest as the host stamps it into a field of <paramref name="fieldLength"/> bytes: truncated or zero-padded.</summary>
    public byte[] FieldValue(int fieldLength)
    {
        var digest = Algorithm switch
        {
            "sha256" => SHA256.HashData(Document),
            "sha384" => SHA384.HashData(Document),
            _ => SHA512.HashData(Document),
        };
        var field = new byte[fieldLength];
        digest.AsSpan(0, Math.Min(digest.Length, fieldLength)).CopyTo(field);
        return field;
    }

    /// <summary>
    /// Checks the document against the launch field the TEE measured and against the agent's (unmeasured) command line;
    /// returns the KMS CA pin the document carries.
    /// </summary>
    /// <exception cref="EvidenceException">The field does not commit to this document, or the command line contradicts it.</exception>
    public byte[] VerifyAgainst(LaunchField field, string function, Uri kms)
    {
        ArgumentNullException.ThrowIfNull(field);
        var expected = FieldValue(field.Value.Length);
        if (!CryptographicOperations.FixedTimeEquals(expected, field.Value))
        {
            throw new EvidenceException(
                $"initdata: {field.Name} is {Convert.ToHexStringLower(field.Value)}, but the given document's {Algorithm} digest makes it "
                + $"{Convert.ToHexStringLower(expected)}: the document is not the one this TEE was launched with");
        }

        // The command line is the host's; the document is measured. They must agree, or the deployment is confused
        // about which function or KMS this is.
        if (!string.Equals(function, Function, StringComparison.Ordinal))
        {
            throw new EvidenceException($"initdata: the measured function is '{Function}' but --function is '{function}'");
        }

        if (!string.Equals(Normalized(kms), Normalized(Kms), StringComparison.Ordinal))
        {
            throw new EvidenceException($"initdata: the measured kms_url is {Kms} but --kms is {kms}");
        }

        return KmsCaSha256;
    }

    // Scheme and host are case-insensitive and a trailing slash says nothing; everything else must match.
    private static string Normalized(Uri uri) => uri.GetLeftPart(UriPartial.Path).TrimEnd('/');

    private static TomlTable Toml(byte[] bytes, string what)
    {
        string text;
        try
        {
            text = new UTF8Encoding(false, throwOnInvalidBytes: true).GetString(bytes);
        }
        catch (DecoderFallbackException)
        {
            throw new EvidenceException($"initdata: {what} is not UTF-8");
        }

        try
        {
            // The serializer builds the table without TOML's semantic checks: a key defined twice (two `image =` lines, a
            // second [data] header, a dotted key redefining a table) keeps one of the values. The document is measured and
            // read by other parsers too (Kata's agent refuses duplicates), so first-wins against last-wins would be a
            // differential; the syntax parser's validation refuses every redefinition. Syntax-level, so no reflection.
            var syntax = SyntaxParser.Parse(text, what, validate: true);
            if (syntax.Diagnostics.FirstOrDefault(d => d.Kind == DiagnosticMessageKind.Error) is { } error)
            {
                throw new EvidenceException($"initdata: {what} is not valid TOML: {Brief(error.ToString())}");
            }

            return TomlSerializer.Deserialize(text, InitdataToml.Default.TomlTable) ?? throw new EvidenceException($"initdata: {what} is empty");
        }
        catch (TomlException e)
        {
            throw new EvidenceException($"initdata: {what} is not valid TOML: {Brief(e.Message)}", e);
        }
    }

    // Tomlyn quotes the earlier definition of a redefined key, which may be a whole table: keep the message a line.
    private static string Brief(string message)
    {
        var line = message.ReplaceLineEndings(" ");
        return line.Length <= 240 ? line : line[..240] + "…";
    }

    private static string RequiredString(TomlTable table, string key, string where) =>
        table.TryGetValue(key, out var value) && value is string text && text.Length > 0
            ? text
            : throw new EvidenceException($"initdata: {where} needs a non-empty string '{key}'");
}

/// <summary>Source-generated TOML metadata: no reflection, so a trimmed or NativeAOT morph-init reads initdata too.</summary>
[Tomlyn.Serialization.TomlSerializable(typeof(TomlTable))]
internal sealed partial class InitdataToml : Tomlyn.Serialization.TomlSerializerContext;
