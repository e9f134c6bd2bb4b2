using System.Text.Json;

namespace Morphisms.Client.Trust;

/// <summary>
/// The client's pinned KMS trust, one JSON file under the user's config directory (mode 0600).
/// Keyed by KMS URL, so one user can trust several KMSs.
/// </summary>
public sealed class KmsTrustStore(string path)
{
    private static readonly JsonSerializerOptions Json = new() { WriteIndented = true, PropertyNamingPolicy = JsonNamingPolicy.SnakeCaseLower };

    /// <summary>The store file.</summary>
    public string Path { get; } = path;

    /// <summary>The record for <paramref name="kmsUrl"/>, or null when that KMS is not trusted.</summary>
    public KmsTrustRecord? Find(string kmsUrl) => Load().GetValueOrDefault(Normalize(kmsUrl));

    /// <summary>All trusted KMSs.</summary>
    public IReadOnlyCollection<KmsTrustRecord> All() => Load().Values;

    /// <summary>Adds or replaces the record of its KMS, atomically.</summary>
    public void Save(KmsTrustRecord record)
    {
        var records = Load();
        records[Normalize(record.KmsUrl)] = record;
        Directory.CreateDirectory(System.IO.Path.GetDirectoryName(System.IO.Path.GetFullPath(Path))!);
        var temp = Path + ".tmp";
        using (var stream = new FileStream(temp, FileMode.Create, FileAccess.Write))
        {
            if (!OperatingSystem.IsWindows())
            {
                File.SetUnixFileMode(temp, UnixFileMode.UserRead | UnixFileMode.UserWrite);
            }

            JsonSerializer.Serialize(stream, records, Json);
        }

        File.Move(temp, Path, overwrite: true);
    }

    /// <summary>The canonical form of a KMS URL used as the key: scheme and host lowercased, no trailing slash.</summary>
    public static string Normalize(string kmsUrl)
    {
        var uri = new Uri(kmsUrl, UriKind.Absolute);
        return $"{uri.Scheme}://{uri.Authority}{uri.AbsolutePath.TrimEnd('/')}".ToLowerInvariant();
    }

    private Dictionary<string, KmsTrustRecord> Load()
    {
        if (!File.Exists(Path))
        {
            return new(StringComparer.Ordinal);
        }

        try
        {
            return JsonSerializer.Deserialize<Dictionary<string, KmsTrustRecord>>(File.ReadAllBytes(Path), Json) ?? new(StringComparer.Ordinal);
        }
        catch (JsonException e)
        {
            throw new InvalidDataException($"{Path}: not a Morphisms trust store ({e.Message}); fix or remove it, then run 'morph kms trust' again", e);
        }
    }
}
