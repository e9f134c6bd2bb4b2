using System.Globalization;
using System.Security.Cryptography;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using Morphisms.Kms.Barrier;
using Morphisms.Kms.Http;

namespace Morphisms.Kms.Kv;

/// <summary>
/// Vault's versioned key/value engine (KV v2) on one mount: <c>data/</c>, <c>metadata/</c>, <c>delete/</c>,
/// <c>undelete/</c>, <c>destroy/</c> and <c>config</c>, with check-and-set, max_versions and soft deletion.
/// Writes on the mount are serialised so check-and-set is exact; each write is one storage transaction.
/// </summary>
internal sealed class KvV2Backend : ILogicalBackend
{
    /// <summary>Versions kept when neither key nor mount says.</summary>
    public const long DefaultMaxVersions = 10;

    private const int MaxCustomMetadataKeys = 64;
    private readonly ISecureStorage _storage;
    private readonly TimeProvider _time;
    private readonly SemaphoreSlim _writes = new(1, 1);
    private readonly KvWatch _watch;

    // Distinguishes this mount's keys from another mount's in the KMS-wide watch.
    private readonly string _watchPrefix = Guid.NewGuid().ToString("N") + "/";

    public KvV2Backend(ISecureStorage storage, TimeProvider time, KvWatch? watch = null)
    {
        _storage = storage;
        _time = time;
        _watch = watch ?? new KvWatch(KmsServerOptions.DefaultMaxKvWaiters, time);
        Routes.Add(new Route("kv/config", "config"), (Operation.Read, ReadConfig), (Operation.Update, WriteConfig));
        Routes.Add(
            new Route("kv/data", "data/(?<path>.+)") { Existence = (_, m, ct) => ExistsAsync(m["path"], ct) },
            (Operation.Read, ReadData), (Operation.Create, WriteData), (Operation.Update, WriteData), (Operation.Delete, DeleteLatest), (Operation.Patch, PatchData));
        Routes.Add(new Route("kv/delete", "delete/(?<path>.+)"), (Operation.Update, (r, m, ct) => ChangeVersions(r, m, VersionChange.Delete, ct)));
        Routes.Add(new Route("kv/undelete", "undelete/(?<path>.+)"), (Operation.Update, (r, m, ct) => ChangeVersions(r, m, VersionChange.Undelete, ct)));
        Routes.Add(new Route("kv/destroy", "destroy/(?<path>.+)"), (Operation.Update, (r, m, ct) => ChangeVersions(r, m, VersionChange.Destroy, ct)));
        Routes.Add(
            new Route("kv/metadata", "metadata(/(?<path>.*))?") { Existence = (_, m, ct) => ExistsAsync(m["path"], ct) },
            (Operation.Read, ReadMetadata), (Operation.List, ListMetadata), (Operation.Create, WriteMetadata), (Operation.Update, WriteMetadata),
            (Operation.Patch, PatchMetadata), (Operation.Delete, DeleteMetadata));
    }

    /// <inheritdoc />
    public string Type => "kv";

    /// <inheritdoc />
    public RouteTable Routes { get; } = new();

    /// <summary>Test hook: awaited by a data write just before its storage transaction.</summary>
    internal Func<Task>? BeforeWriteTransactionForTests { get; set; }

    /// <summary>
    /// Wakes every long-poll read parked on this mount, so that it reads again: the mount is being unmounted, its
    /// storage view is closed, and the read ends with that 503 instead of holding its request until its wait ends.
    /// </summary>
    public void WakeWaiters() => _watch.NotifyAll(_watchPrefix);

    /// <summary>Whether <paramref name="path"/> is a key with metadata: written once and not removed since (versions deleted or destroyed still count).</summary>
    public Task<bool> KeyExistsAsync(string path, CancellationToken ct) => ExistsAsync(path, ct);

    private async Task<bool> ExistsAsync(string path, CancellationToken ct) =>
        IsValidKey(path) && await _storage.GetAsync(MetadataKey(path), ct).ConfigureAwait(false) is not null;

    private async Task<KmsResponse?> ReadConfig(KmsRequest request, RouteMatch match, CancellationToken ct)
    {
        var config = await LoadConfigAsync(ct).ConfigureAwait(false);
        return KmsResponse.WithData(new JsonObject
        {
            ["cas_required"] = config.CasRequired,
            ["delete_version_after"] = Durations.ToGoString(TimeSpan.FromSeconds(config.DeleteVersionAfter)),
            ["max_versions"] = config.MaxVersions,
        });
    }

    private async Task<KmsResponse?> WriteConfig(KmsRequest request, RouteMatch match, CancellationToken ct)
    {
        var f = request.Fields;
        await _writes.WaitAsync(ct).ConfigureAwait(false);
        try
        {
            var config = await LoadConfigAsync(ct).ConfigureAwait(false);
            config.MaxVersions = f.NonNegativeInt("max_versions") ?? config.MaxVersions;
            config.CasRequired = f.Bool("cas_required") ?? config.CasRequired;
            config.DeleteVersionAfter = (long)(f.Duration("delete_version_after")?.TotalSeconds ?? config.DeleteVersionAfter);
            await _storage.PutJsonAsync("config", config, ct).ConfigureAwait(false);
            return null;
        }
        finally
        {
            _writes.Release();
        }
    }

    private async Task<KmsResponse?> ReadData(KmsRequest request, RouteMatch match, CancellationToken ct)
    {
        var path = ValidKey(match["path"]);
        var f = request.Fields;
        var requested = f.NonNegativeInt("version", long.MaxValue) ?? 0;
        var after = f.NonNegativeInt("wait_version_gt", long.MaxValue);
        var wait = f.Duration("wait");
        if (after is null)
        {
            return wait is null
                ? await ReadVersionAsync(path, requested, ct).ConfigureAwait(false)
                : throw KmsException.BadRequest("invalid parameter 'wait': it only applies with 'wait_version_gt'");
        }

        if (requested != 0)
        {
            throw KmsException.BadRequest("invalid parameter 'wait_version_gt': it waits for the current version, so it cannot be combined with 'version'");
        }

        if (wait is { } w && (w <= TimeSpan.Zero || w > KvWatch.MaxWait))
        {
            throw KmsException.BadRequest($"invalid parameter 'wait': a duration above 0 and at most {Durations.ToGoString(KvWatch.MaxWait)}");
        }

        // A missing key counts as version 0, so an agent can wait for its bundle to be written; at the end it is a 404.
        var reads = 0;
        var result = await _watch.WaitAsync(
            _watchPrefix + path,
            after.Value,
            wait ?? KvWatch.DefaultWait,
            async () =>
            {
                KmsResponse? read;
                try
                {
                    read = await ReadVersionAsync(path, 0, ct).ConfigureAwait(false);
                }
                catch (KmsException e) when (e.StatusCode == 404)
                {
                    read = null;
                }

                // The dispatcher authorised what was there when the request came; anything read after parking may be
                // newer (a rotated bundle), and the token may have been revoked meanwhile (a retired revision's
                // instance), so it is authorised again, after the read, as a fresh request would be.
                if (reads++ > 0)
                {
                    await VaultDispatcher.ReauthorizeAsync(request, this, ct).ConfigureAwait(false);
                }

                return read;
            },
            r => r?.Data?["metadata"]?["version"]?.GetValue<long>() ?? 0,
            ct).ConfigureAwait(false);
        return result ?? throw KmsException.NotFound();
    }

    /// <summary>
    /// Reads a version and its metadata as one consistent state. Reads take no lock, so a write may commit between the
    /// metadata read and the data read and remove the version the metadata named (a data write pruning it under
    /// max_versions, a destroy, a metadata delete); that read is then done again under the mount's write lock, which
    /// every write holds across its transaction (Vault holds the key's lock across both reads). Never a 404 for a key
    /// that existed throughout, which a long-poll reader would take for its key's deletion.
    /// </summary>
    private async Task<KmsResponse> ReadVersionAsync(string path, long requested, CancellationToken ct)
    {
        if (await TryReadVersionAsync(path, requested, ct).ConfigureAwait(false) is { } read)
        {
            return read;
        }

        await _writes.WaitAsync(ct).ConfigureAwait(false);
        try
        {
            return await TryReadVersionAsync(path, requested, ct).ConfigureAwait(false) ?? throw KmsException.NotFound();
        }
        finally
        {
            _writes.Release();
        }
    }

    /// <summary>The read; null when the version the metadata named was gone by the time its data was read.</summary>
    private async Task<KmsResponse?> TryReadVersionAsync(string path, long requested, CancellationToken ct)
    {
        var meta = await LoadMetadataAsync(path, ct).ConfigureAwait(false);
        if (meta is null)
        {
            throw KmsException.NotFound();
        }

        var version = requested == 0 ? meta.CurrentVersion : requested;
        if (!meta.Versions.TryGetValue(version, out var v))
        {
            throw KmsException.NotFound();
        }

        if (v.IsGone(_time.GetUtcNow()))
        {
            // Vault answers 404 but still shows the version's metadata, so clients can tell deleted from absent.
            return new KmsResponse { StatusCode = 404, Data = new JsonObject { ["data"] = null, ["metadata"] = meta.VersionJson(version) } };
        }

        if (await _storage.GetAsync(VersionKey(path, version), ct).ConfigureAwait(false) is not { } stored)
        {
            return null;
        }

        return KmsResponse.WithData(new JsonObject
        {
            ["data"] = JsonNode.Parse(stored),
            ["metadata"] = meta.VersionJson(version),
        });
    }

    private Task<KmsResponse?> WriteData(KmsRequest request, RouteMatch match, CancellationToken ct)
    {
        var path = ValidKey(match["path"]);
        var data = request.Fields.Object("data") ?? throw KmsException.BadRequest("no data provided");
        var options = request.Fields.Object("options");
        var cas = options is null ? null : new Fields(options).NonNegativeInt("cas", long.MaxValue);
        return WriteVersionAsync(path, cas, _ => data.DeepClone().AsObject(), ct);
    }

    private Task<KmsResponse?> PatchData(KmsRequest request, RouteMatch match, CancellationToken ct)
    {
        RequireMergePatch(request);
        var path = ValidKey(match["path"]);
        var patch = request.Fields.Object("data") ?? throw KmsException.BadRequest("no data provided");
        var options = request.Fields.Object("options");
        var cas = options is null ? null : new Fields(options).NonNegativeInt("cas", long.MaxValue);
        return WriteVersionAsync(path, cas, current => current is null ? throw KmsException.NotFound() : MergePatch(current, patch), ct);
    }

    private async Task<KmsResponse?> WriteVersionAsync(string path, long? cas, Func<JsonObject?, JsonObject> produce, CancellationToken ct)
    {
        await _writes.WaitAsync(ct).ConfigureAwait(false);
        try
        {
            var now = _time.GetUtcNow();
            var config = await LoadConfigAsync(ct).ConfigureAwait(false);
            var meta = await LoadMetadataAsync(path, ct).ConfigureAwait(false) ?? new KvKeyMetadata { CreatedTime = now };
            if (cas is { } expected)
            {
                if (expected != meta.CurrentVersion)
                {
                    throw KmsException.BadRequest("check-and-set parameter did not match the current version");
                }
            }
            else if (meta.CasRequired || config.CasRequired)
            {
                throw KmsException.BadRequest("check-and-set parameter required for this call");
            }

            JsonObject? current = null;
            if (meta.Versions.TryGetValue(meta.CurrentVersion, out var cur) && !cur.IsGone(now)
                && await _storage.GetAsync(VersionKey(path, meta.CurrentVersion), ct).ConfigureAwait(false) is { } bytes)
            {
                current = JsonNode.Parse(bytes)?.AsObject();
            }

            var data = produce(current);
            var version = meta.CurrentVersion + 1;
            var deleteAfter = EffectiveDeleteAfter(meta, config);
            meta.Versions[version] = new KvVersion { CreatedTime = now, DeletionTime = deleteAfter > 0 ? now.AddSeconds(deleteAfter) : null };
            meta.CurrentVersion = version;
            meta.UpdatedTime = now;

            var ops = new List<(string, byte[]?)> { (VersionKey(path, version), Encoding.UTF8.GetBytes(data.ToJsonString())) };
            Prune(path, meta, meta.MaxVersions > 0 ? meta.MaxVersions : config.MaxVersions > 0 ? config.MaxVersions : DefaultMaxVersions, ops);
            ops.Add((MetadataKey(path), SecureStorageJson.ToJson(meta)));
            if (BeforeWriteTransactionForTests is { } hook)
            {
                await hook().ConfigureAwait(false);
            }

            await _storage.TransactAsync(ops, ct).ConfigureAwait(false);
            _watch.Notify(_watchPrefix + path);
            return KmsResponse.WithData(meta.VersionJson(version));
        }
        finally
        {
            _writes.Release();
        }
    }

    private Task<KmsResponse?> DeleteLatest(KmsRequest request, RouteMatch match, CancellationToken ct) =>
        MutateVersionsAsync(ValidKey(match["path"]), meta => [meta.CurrentVersion], VersionChange.Delete, ct);

    private Task<KmsResponse?> ChangeVersions(KmsRequest request, RouteMatch match, VersionChange change, CancellationToken ct)
    {
        var path = ValidKey(match["path"]);
        var versions = request.Fields.IntList("versions");
        if (versions is null || versions.Count == 0)
        {
            throw KmsException.BadRequest("no version number provided");
        }

        if (versions.Any(v => v <= 0))
        {
            throw KmsException.BadRequest("version numbers must be positive");
        }

        return MutateVersionsAsync(path, _ => versions, change, ct);
    }

    private async Task<KmsResponse?> MutateVersionsAsync(string path, Func<KvKeyMetadata, IEnumerable<long>> select, VersionChange change, CancellationToken ct)
    {
        await _writes.WaitAsync(ct).ConfigureAwait(false);
        try
        {
            var meta = await LoadMetadataAsync(path, ct).ConfigureAwait(false);
            if (meta is null)
            {
                return null;
            }

            var now = _time.GetUtcNow();
            var ops = new List<(string, byte[]?)>();
            foreach (var n in select(meta))
            {
                if (!meta.Versions.TryGetValue(n, out var v) || v.Destroyed)
                {
                    continue;
                }

                switch (change)
                {
                    case VersionChange.Delete when !v.IsGone(now):
                        v.DeletionTime = now;
                        break;
                    case VersionChange.Undelete:
                        v.DeletionTime = null;
                        break;
                    case VersionChange.Destroy:
                        v.Destroyed = true;
                        ops.Add((VersionKey(path, n), null));
                        break;
                }
            }

            meta.UpdatedTime = now;
            ops.Add((MetadataKey(path), SecureStorageJson.ToJson(meta)));
            await _storage.TransactAsync(ops, ct).ConfigureAwait(false);
            _watch.Notify(_watchPrefix + path);
            return null;
        }
        finally
        {
            _writes.Release();
        }
    }

    private async Task<KmsResponse?> ReadMetadata(KmsRequest request, RouteMatch match, CancellationToken ct)
    {
        var path = match["path"];
        if (path.Length == 0 || path.EndsWith('/'))
        {
            // A folder is not a key: a read of it is a 404, as in Vault. Listing is LIST or GET ?list=true, which the
            // ACL checks for "list"; answering the read with the listing handed key names to "read"-only tokens.
            throw new KmsException(404, "a folder has no metadata to read: list it (LIST, or GET with ?list=true)");
        }

        var meta = await LoadMetadataAsync(ValidKey(path), ct).ConfigureAwait(false) ?? throw KmsException.NotFound();
        return KmsResponse.WithData(meta.ToJson());
    }

    private async Task<KmsResponse?> ListMetadata(KmsRequest request, RouteMatch match, CancellationToken ct)
    {
        var folder = match["path"];
        if (folder.Length > 0 && !folder.EndsWith('/'))
        {
            folder += "/";
        }

        var keys = await _storage.ListAsync("metadata/" + folder, ct).ConfigureAwait(false);
        if (keys.Count == 0)
        {
            throw KmsException.NotFound();
        }

        return KmsResponse.WithData(new JsonObject { ["keys"] = JsonValues.Strings(keys) });
    }

    private Task<KmsResponse?> WriteMetadata(KmsRequest request, RouteMatch match, CancellationToken ct)
    {
        var path = ValidKey(match["path"]);
        var custom = request.Fields.StringMap("custom_metadata");
        return WriteMetadataAsync(path, request.Fields, current => custom ?? current, create: true, ct);
    }

    /// <summary>
    /// Vault's metadata PATCH: the key must exist (404, nothing created), the settings it names are set, and
    /// <c>custom_metadata</c> is a JSON merge patch (RFC 7386) of the stored map: a key with a string value is set, a
    /// key with null removed, the others kept; <c>custom_metadata: null</c> removes them all. POST replaces the map.
    /// </summary>
    private Task<KmsResponse?> PatchMetadata(KmsRequest request, RouteMatch match, CancellationToken ct)
    {
        RequireMergePatch(request);
        var path = ValidKey(match["path"]);
        var f = request.Fields;
        Func<Dictionary<string, string>?, Dictionary<string, string>?> custom = current => current;
        if (f.Data.ContainsKey("custom_metadata"))
        {
            var patch = f.Object("custom_metadata");
            if (patch is not null && patch.Any(p => p.Value is not null && p.Value.GetValueKind() != JsonValueKind.String))
            {
                throw KmsException.BadRequest("invalid value for parameter 'custom_metadata': expected a map of strings (null removes a key)");
            }

            custom = current => patch is null ? null : MergeCustomMetadata(current, patch);
        }

        return WriteMetadataAsync(path, f, custom, create: false, ct);
    }

    /// <summary>
    /// Sets the settings <paramref name="f"/> names and the custom metadata <paramref name="custom"/> makes of the
    /// stored map, in one transaction; a bad value is a 400 before anything is written. Without
    /// <paramref name="create"/> an absent key is a 404.
    /// </summary>
    private async Task<KmsResponse?> WriteMetadataAsync(
        string path, Fields f, Func<Dictionary<string, string>?, Dictionary<string, string>?> custom, bool create, CancellationToken ct)
    {
        var maxVersions = f.NonNegativeInt("max_versions");
        var casRequired = f.Bool("cas_required");
        var deleteAfter = f.Duration("delete_version_after");
        await _writes.WaitAsync(ct).ConfigureAwait(false);
        try
        {
            var now = _time.GetUtcNow();
            var meta = await LoadMetadataAsync(path, ct).ConfigureAwait(false)
                ?? (create ? new KvKeyMetadata { CreatedTime = now } : throw KmsException.NotFound());
            var customMetadata = custom(meta.CustomMetadata);
            if (customMetadata is not null)
            {
                ValidateCustomMetadata(customMetadata);
            }

            meta.MaxVersions = maxVersions ?? meta.MaxVersions;
            meta.CasRequired = casRequired ?? meta.CasRequired;
            meta.DeleteVersionAfter = deleteAfter is { } d ? (long)d.TotalSeconds : meta.DeleteVersionAfter;
            meta.CustomMetadata = customMetadata;
            meta.UpdatedTime = now;

            // As Vault's metadata write, a lower max_versions deletes nothing here: the next data write trims to it.
            await _storage.TransactAsync([(MetadataKey(path), SecureStorageJson.ToJson(meta))], ct).ConfigureAwait(false);
            return null;
        }
        finally
        {
            _writes.Release();
        }
    }

    private async Task<KmsResponse?> DeleteMetadata(KmsRequest request, RouteMatch match, CancellationToken ct)
    {
        var path = ValidKey(match["path"]);
        await _writes.WaitAsync(ct).ConfigureAwait(false);
        try
        {
            var meta = await LoadMetadataAsync(path, ct).ConfigureAwait(false);
            if (meta is not null)
            {
                var ops = meta.Versions.Keys.Select(v => (VersionKey(path, v), (byte[]?)null)).ToList();
                ops.Add((MetadataKey(path), null));
                await _storage.TransactAsync(ops, ct).ConfigureAwait(false);

                // Parked readers end with a 404 now (KvWatch: the key's versions fell below what they first read).
                _watch.Notify(_watchPrefix + path);
            }

            return null;
        }
        finally
        {
            _writes.Release();
        }
    }

    private async Task<KvConfig> LoadConfigAsync(CancellationToken ct) =>
        await _storage.GetJsonAsync<KvConfig>("config", ct).ConfigureAwait(false) ?? new KvConfig();

    private Task<KvKeyMetadata?> LoadMetadataAsync(string path, CancellationToken ct) =>
        _storage.GetJsonAsync<KvKeyMetadata>(MetadataKey(path), ct);

    /// <summary>Drops the oldest versions beyond <paramref name="max"/>, adding the deletes to <paramref name="ops"/>.</summary>
    private static void Prune(string path, KvKeyMetadata meta, long max, List<(string, byte[]?)> ops)
    {
        while (meta.Versions.Count > max)
        {
            var oldest = meta.Versions.Keys.First();
            meta.Versions.Remove(oldest);
            ops.Add((VersionKey(path, oldest), null));
            meta.OldestVersion = meta.Versions.Keys.First();
        }
    }

    private static long EffectiveDeleteAfter(KvKeyMetadata meta, KvConfig config) =>
        (meta.DeleteVersionAfter, config.DeleteVersionAfter) switch
        {
            (0, var c) => c,
            (var k, 0) => k,
            (var k, var c) => Math.Min(k, c),
        };

    private static JsonObject MergePatch(JsonObject target, JsonObject patch)
    {
        // RFC 7386: null removes a member, objects merge recursively, anything else replaces.
        var result = target.DeepClone().AsObject();
        foreach (var (key, value) in patch)
        {
            if (value is null)
            {
                result.Remove(key);
            }
            else if (value is JsonObject po && result[key] is JsonObject to)
            {
                result[key] = MergePatch(to, po);
            }
            else
            {
                result[key] = value.DeepClone();
            }
        }

        return result;
    }

    /// <summary><paramref name="current"/> with <paramref name="patch"/> merged in by <see cref="MergePatch"/>; null when nothing is left.</summary>
    private static Dictionary<string, string>? MergeCustomMetadata(Dictionary<string, string>? current, JsonObject patch)
    {
        var stored = new JsonObject((current ?? []).Select(p => KeyValuePair.Create(p.Key, (JsonNode?)p.Value)));
        var merged = MergePatch(stored, patch);
        return merged.Count == 0 ? null : merged.ToDictionary(p => p.Key, p => p.Value!.GetValue<string>(), StringComparer.Ordinal);
    }

    /// <summary>Vault answers a PATCH without the merge-patch content type 415 in its HTTP layer, before the backend.</summary>
    private static void RequireMergePatch(KmsRequest request)
    {
        if (!string.Equals(request.ContentType?.Split(';')[0].Trim(), "application/merge-patch+json", StringComparison.OrdinalIgnoreCase))
        {
            throw new KmsException(415, "PATCH requires Content-Type application/merge-patch+json");
        }
    }

    private static void ValidateCustomMetadata(Dictionary<string, string> custom)
    {
        if (custom.Count > MaxCustomMetadataKeys)
        {
            throw KmsException.BadRequest($"custom_metadata may hold at most {MaxCustomMetadataKeys} keys");
        }

        foreach (var (k, v) in custom)
        {
            if (k.Length == 0 || Encoding.UTF8.GetByteCount(k) > 128 || Encoding.UTF8.GetByteCount(v) > 512)
            {
                throw KmsException.BadRequest("custom_metadata keys must be 1-128 bytes and values at most 512 bytes");
            }
        }
    }

    private static string ValidKey(string path) =>
        IsValidKey(path) ? path : throw KmsException.BadRequest("invalid secret path: it must be non-empty, not end with '/', and have no empty, '.' or '..' segments");

    private static bool IsValidKey(string path) =>
        path.Length > 0 && path.Split('/').All(s => s is not ("" or "." or "..")) && !path.Any(char.IsControl);

    private static string MetadataKey(string path) => "metadata/" + path;

    private static string VersionKey(string path, long version) =>
        "versions/" + Convert.ToHexStringLower(SHA256.HashData(Encoding.UTF8.GetBytes(path))) + "/" + version.ToString(CultureInfo.InvariantCulture);

    private enum VersionChange
    {
        Delete,
        Undelete,
        Destroy,
    }
}
