using System.Text.Json.Nodes;
using Morphisms.Kms.Http;

namespace Morphisms.Kms.Kv;

/// <summary>The stored metadata of one KV v2 key: its versions and settings.</summary>
internal sealed class KvKeyMetadata
{
    /// <summary>When the key was first written.</summary>
    public DateTimeOffset CreatedTime { get; set; }

    /// <summary>When a version or a setting last changed.</summary>
    public DateTimeOffset UpdatedTime { get; set; }

    /// <summary>The newest version number (0 before the first write).</summary>
    public long CurrentVersion { get; set; }

    /// <summary>The oldest kept version after pruning by max_versions (0 until something was pruned).</summary>
    public long OldestVersion { get; set; }

    /// <summary>Versions to keep; 0 defers to the mount (default 10).</summary>
    public long MaxVersions { get; set; }

    /// <summary>Whether writes must carry <c>cas</c>.</summary>
    public bool CasRequired { get; set; }

    /// <summary>Seconds after which new versions are soft-deleted; 0 for never.</summary>
    public long DeleteVersionAfter { get; set; }

    /// <summary>Client metadata (not secret).</summary>
    public Dictionary<string, string>? CustomMetadata { get; set; }

    /// <summary>Per-version state.</summary>
    public SortedDictionary<long, KvVersion> Versions { get; set; } = [];

    /// <summary>The metadata endpoint's <c>data</c> object.</summary>
    public JsonObject ToJson()
    {
        var versions = new JsonObject();
        foreach (var (n, v) in Versions)
        {
            versions[n.ToString(System.Globalization.CultureInfo.InvariantCulture)] = new JsonObject
            {
                ["created_time"] = Timestamps.Rfc3339(v.CreatedTime),
                ["deletion_time"] = v.DeletionTime is { } d ? Timestamps.Rfc3339(d) : "",
                ["destroyed"] = v.Destroyed,
            };
        }

        return new JsonObject
        {
            ["cas_required"] = CasRequired,
            ["created_time"] = Timestamps.Rfc3339(CreatedTime),
            ["current_version"] = CurrentVersion,
            ["custom_metadata"] = CustomMetadataJson(),
            ["delete_version_after"] = Durations.ToGoString(TimeSpan.FromSeconds(DeleteVersionAfter)),
            ["max_versions"] = MaxVersions,
            ["oldest_version"] = OldestVersion,
            ["updated_time"] = Timestamps.Rfc3339(UpdatedTime),
            ["versions"] = versions,
        };
    }

    /// <summary>The version object returned by data reads and writes.</summary>
    public JsonObject VersionJson(long version)
    {
        var v = Versions[version];
        return new JsonObject
        {
            ["created_time"] = Timestamps.Rfc3339(v.CreatedTime),
            ["custom_metadata"] = CustomMetadataJson(),
            ["deletion_time"] = v.DeletionTime is { } d ? Timestamps.Rfc3339(d) : "",
            ["destroyed"] = v.Destroyed,
            ["version"] = version,
        };
    }

    private JsonObject? CustomMetadataJson() =>
        CustomMetadata is null ? null : JsonValues.StringMap(CustomMetadata.OrderBy(p => p.Key, StringComparer.Ordinal));
}

/// <summary>The state of one version.</summary>
internal sealed class KvVersion
{
    /// <summary>When the version was written.</summary>
    public DateTimeOffset CreatedTime { get; set; }

    /// <summary>When it was (or will be) soft-deleted.</summary>
    public DateTimeOffset? DeletionTime { get; set; }

    /// <summary>Whether its data was permanently removed.</summary>
    public bool Destroyed { get; set; }

    /// <summary>Whether a read at <paramref name="now"/> must not return the data.</summary>
    public bool IsGone(DateTimeOffset now) => Destroyed || (DeletionTime is { } d && d <= now);
}

/// <summary>The mount-wide KV v2 settings (<c>MOUNT/config</c>).</summary>
internal sealed class KvConfig
{
    /// <summary>Versions kept per key; 0 means 10.</summary>
    public long MaxVersions { get; set; }

    /// <summary>Whether every write must carry <c>cas</c>.</summary>
    public bool CasRequired { get; set; }

    /// <summary>Seconds after which new versions are soft-deleted; 0 for never.</summary>
    public long DeleteVersionAfter { get; set; }
}
