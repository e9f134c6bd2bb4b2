using System.Text.Json;
using System.Text.Json.Nodes;

namespace Morphisms.Attestation.Simulated;

/// <summary>
/// Content digests of one bundle's files that the simulated TEE measured before, kept beside its keys (a file per
/// bundle under <see cref="DirectoryName"/> in its state directory), so that a cold start does not digest again
/// megabytes that did not change. An entry counts only while the file's <see cref="FileIdentity"/> is the one
/// recorded with it: any write to the file, or a new file at its path, invalidates it and the content is digested
/// again. The cache changes how fast a measurement is taken, never its value.
/// </summary>
/// <remarks>
/// The host records digests when it measures a revision at deploy (<see cref="Save"/>); an instance only reads them,
/// from its bundle's record, which its sandbox mounts read-only (and no other bundle's). Whoever can write this file can make the simulated TEE report the
/// digest of their choice — as whoever can read the directory can sign any evidence with the keys beside it: the
/// simulated TEE proves nothing against the host, and a real TEE measures in hardware.
/// </remarks>
public sealed class SimulatedMeasurementCache
{
    /// <summary>The directory, in the simulated TEE's state directory, that holds one record per bundle.</summary>
    public const string DirectoryName = "measured-files";

    // Stale entries are dropped at every save; the bound only stops an unusual bundle from growing the file forever
    // (a launch reads the whole record of its bundle).
    private const int MaxEntries = 65536;

    private readonly string _path;
    private readonly Lock _lock = new();
    private readonly Dictionary<string, Entry> _entries;
    private bool _changed;

    private SimulatedMeasurementCache(string path, Dictionary<string, Entry> entries)
    {
        _path = path;
        _entries = entries;
    }

    /// <summary>How many digests the cache holds.</summary>
    public int Count
    {
        get
        {
            lock (_lock)
            {
                return _entries.Count;
            }
        }
    }

    /// <summary>
    /// Opens the record of <paramref name="bundleDirectory"/> kept by the simulated TEE whose state is in
    /// <paramref name="stateDirectory"/>. A missing or unreadable record, or one that is not the expected JSON, gives
    /// an empty cache: every file is then digested.
    /// </summary>
    public static SimulatedMeasurementCache Open(string stateDirectory, string bundleDirectory)
    {
        var path = RecordPath(stateDirectory, bundleDirectory);
        return new SimulatedMeasurementCache(path, Read(path));
    }

    /// <summary>Where the record of <paramref name="bundleDirectory"/> is kept: named by the SHA-256 of its full path.</summary>
    public static string RecordPath(string stateDirectory, string bundleDirectory) =>
        Path.Combine(
            stateDirectory,
            DirectoryName,
            Convert.ToHexStringLower(System.Security.Cryptography.SHA256.HashData(System.Text.Encoding.UTF8.GetBytes(Path.GetFullPath(bundleDirectory)))) + ".json");

    /// <summary>
    /// Writes what was recorded since opening, without the entries whose file has changed or gone, by replacing the
    /// file in one rename (a reader sees the old cache or the new one, never a mix). Returns false when it could not
    /// write (a read-only directory, say): a cache that is not saved only costs later measurements their speed.
    /// </summary>
    public bool Save()
    {
        JsonObject files;
        lock (_lock)
        {
            if (!_changed)
            {
                return true;
            }

            foreach (var stale in _entries.Where(e => FileIdentity.Of(e.Key) != e.Value.Identity).Select(e => e.Key).ToList())
            {
                _entries.Remove(stale);
            }

            files = new JsonObject(_entries.Select(e => KeyValuePair.Create(e.Key, (JsonNode?)e.Value.ToJson())));
            _changed = false;
        }

        var document = new JsonObject { ["version"] = 1, ["files"] = files };
        var temporary = $"{_path}.{Guid.NewGuid():N}.tmp";
        try
        {
            Directory.CreateDirectory(Path.GetDirectoryName(_path)!);
            var options = new FileStreamOptions { Mode = FileMode.CreateNew, Access = FileAccess.Write };
            if (!OperatingSystem.IsWindows())
            {
                options.UnixCreateMode = UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.GroupRead | UnixFileMode.OtherRead;
            }

            using (var stream = new FileStream(temporary, options))
            {
                stream.Write(System.Text.Encoding.UTF8.GetBytes(document.ToJsonString()));
                stream.Flush(flushToDisk: true);
            }

            File.Move(temporary, _path, overwrite: true);
            return true;
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            TryDelete(temporary);
            lock (_lock)
            {
                _changed = true;
            }

            return false;
        }
    }

    private static void TryDelete(string path)
    {
        try
        {
            File.Delete(path);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
        }
    }

    /// <summary>The digest recorded for <paramref name="fullPath"/>, if it was recorded with this very <paramref name="identity"/>.</summary>
    internal bool TryGet(string fullPath, FileIdentity identity, out byte[] sha256)
    {
        lock (_lock)
        {
            if (_entries.TryGetValue(fullPath, out var entry) && entry.Identity == identity)
            {
                sha256 = entry.Sha256;
                return true;
            }
        }

        sha256 = [];
        return false;
    }

    /// <summary>Records the digest of <paramref name="fullPath"/>'s content as it was when the file had <paramref name="identity"/>.</summary>
    internal void Record(string fullPath, FileIdentity identity, byte[] sha256)
    {
        lock (_lock)
        {
            if (_entries.Count >= MaxEntries && !_entries.ContainsKey(fullPath))
            {
                return;
            }

            _entries[fullPath] = new Entry(identity, sha256);
            _changed = true;
        }
    }

    private static Dictionary<string, Entry> Read(string path)
    {
        var entries = new Dictionary<string, Entry>(StringComparer.Ordinal);
        try
        {
            if (JsonNode.Parse(File.ReadAllBytes(path)) is not JsonObject { } document
                || document["version"] is not JsonValue version || !version.TryGetValue<int>(out var v) || v != 1
                || document["files"] is not JsonObject files)
            {
                return entries;
            }

            foreach (var (file, value) in files)
            {
                if (entries.Count < MaxEntries && Path.IsPathFullyQualified(file) && Entry.TryParse(value as JsonObject) is { } entry)
                {
                    entries[file] = entry;
                }
            }
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException or JsonException or ArgumentException or InvalidOperationException)
        {
            // No cache, or not one this version wrote: measure everything.
        }

        return entries;
    }

    private sealed record Entry(FileIdentity Identity, byte[] Sha256)
    {
        public JsonObject ToJson() => new()
        {
            ["device"] = Identity.Device,
            ["inode"] = Identity.Inode,
            ["size"] = Identity.Size,
            ["mtime_ns"] = Identity.ModifiedNs,
            ["ctime_ns"] = Identity.ChangedNs,
            ["sha256"] = Convert.ToHexStringLower(Sha256),
        };

        public static Entry? TryParse(JsonObject? json)
        {
            if (json?["sha256"] is not JsonValue hexValue || !hexValue.TryGetValue<string>(out var hex) || hex.Length != 64
                || !TryGet(json, "device", out ulong device) || !TryGet(json, "inode", out ulong inode)
                || !TryGet(json, "size", out long size) || !TryGet(json, "mtime_ns", out long modified) || !TryGet(json, "ctime_ns", out long changed))
            {
                return null;
            }

            try
            {
                return new Entry(new FileIdentity(device, inode, size, modified, changed), Convert.FromHexString(hex));
            }
            catch (FormatException)
            {
                return null;
            }
        }

        private static bool TryGet<T>(JsonObject json, string name, out T value)
        {
            if (json[name] is JsonValue node && node.TryGetValue(out T? read) && read is not null)
            {
                value = read;
                return true;
            }

            value = default!;
            return false;
        }
    }
}
