using System.Text.Json;
using Morphisms.Attestation;

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

    /// <summary>How long <see cref="Save"/> waits for another process's save to finish before giving up.</summary>
    public static TimeSpan LockTimeout { get; } = TimeSpan.FromSeconds(10);

    /// <summary>The record for <paramref name="kmsUrl"/>, or null when that KMS is not trusted.</summary>
    public KmsTrustRecord? Find(string kmsUrl) => Load().GetValueOrDefault(Normalize(kmsUrl));

    /// <summary>All trusted KMSs.</summary>
    public IReadOnlyCollection<KmsTrustRecord> All() => Load().Values;

    /// <summary>
    /// Adds or replaces the record of its KMS, atomically. Concurrent savers (<c>morph up</c> and <c>morph kms trust</c>
    /// at once, in any processes) are serialised on <c>PATH.lock</c>, so neither loses the other's record.
    /// </summary>
    /// <param name="record">The record to store.</param>
    /// <param name="keepPinnedRoot">
    /// Refuse to replace a record for the same KMS that pins another root CA. The comparison is made under the lock, so
    /// a concurrent save cannot slip a root in between the check and the write. A record with the same root replaces the
    /// TLS key pinned for the address: a record <see cref="KmsAttestationClient"/> made shows that its KMS proved it holds
    /// that root's key (<see cref="KmsTrustRecord.RootCaKeyProven"/>), which the public root certificate alone would not.
    /// </param>
    /// <returns>The record this one replaced, or null when the KMS had none.</returns>
    /// <exception cref="KmsRootChangedException"><paramref name="keepPinnedRoot"/>, and the stored record pins another root CA (nothing is written).</exception>
    /// <exception cref="InvalidDataException">The existing file is not a trust store (it is left as it is).</exception>
    /// <exception cref="FileNotDurableException">The store was written, but its directory could not be flushed to disk: a crash may still lose the record.</exception>
    /// <exception cref="IOException">The file cannot be written, or another process held the lock for longer than <see cref="LockTimeout"/>.</exception>
    public KmsTrustRecord? Save(KmsTrustRecord record, bool keepPinnedRoot = false)
    {
        Directory.CreateDirectory(System.IO.Path.GetDirectoryName(System.IO.Path.GetFullPath(Path))!);
        using (AcquireLock())
        {
            // Read under the lock: a record another process saved since we last looked is kept, and is the one compared.
            var records = Load();
            var key = Normalize(record.KmsUrl);
            var previous = records.GetValueOrDefault(key);
            if (keepPinnedRoot && previous is not null && !string.Equals(previous.RootCaSha256, record.RootCaSha256, StringComparison.OrdinalIgnoreCase))
            {
                throw new KmsRootChangedException(previous, record);
            }

            records[key] = record;

            // The whole store, replaced atomically (PrivateFile: an exclusively created 0600 temporary file that never
            // follows a planted symlink, flushed, renamed over the store, then the directory flushed): a crash leaves
            // the old store or the new one, never a truncated file.
            PrivateFile.Write(Path, JsonSerializer.SerializeToUtf8Bytes(records, Json));
            return previous;
        }
    }

    /// <summary>The canonical form of a KMS URL used as the key: scheme and host lowercased, no trailing slash.</summary>
    public static string Normalize(string kmsUrl)
    {
        var uri = new Uri(kmsUrl, UriKind.Absolute);
        return $"{uri.Scheme}://{uri.Authority}{uri.AbsolutePath.TrimEnd('/')}".ToLowerInvariant();
    }

    /// <summary>
    /// Takes the store's lock: <c>PATH.lock</c> opened with <see cref="FileShare.None"/>, which .NET maps to an exclusive
    /// <c>flock</c> on Unix. The kernel drops it when the holder exits, so a crashed process never leaves the store
    /// locked; the file itself stays (deleting it would let two processes lock two different files).
    /// </summary>
    private FileStream AcquireLock()
    {
        var lockPath = Path + ".lock";
        var options = new FileStreamOptions { Mode = FileMode.OpenOrCreate, Access = FileAccess.ReadWrite, Share = FileShare.None };
        if (!OperatingSystem.IsWindows())
        {
            options.UnixCreateMode = UnixFileMode.UserRead | UnixFileMode.UserWrite;
        }

        var deadline = DateTime.UtcNow + LockTimeout;
        while (true)
        {
            try
            {
                return new FileStream(lockPath, options);
            }
            catch (IOException e) when (e is not (FileNotFoundException or DirectoryNotFoundException or PathTooLongException))
            {
                // Held by another save: they take milliseconds, so poll briefly until the deadline.
                if (DateTime.UtcNow >= deadline)
                {
                    throw new IOException($"{Path}: could not lock it through {lockPath} within {LockTimeout.TotalSeconds:0} s ({e.Message}); another morph may be saving a trust record, try again", e);
                }

                Thread.Sleep(Random.Shared.Next(5, 20));
            }
        }
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
            throw new InvalidDataException($"{Path}: not a Morphisms trust store ({e.Message}); fix it, or remove it and trust the KMSs again", e);
        }
    }
}
