using System.Collections.Immutable;
using System.Security.Cryptography;
using System.Text.Json.Nodes;
using Morphisms.Kms.Barrier;
using Morphisms.Kms.Http;
using Morphisms.Kms.Kv;

namespace Morphisms.Kms.Sys;

/// <summary>One mounted secrets engine.</summary>
/// <param name="Path">The mount path with trailing slash.</param>
/// <param name="Type">The engine type (<c>kv</c>).</param>
/// <param name="Uuid">Names the engine's storage prefix, so a remount never sees another mount's data.</param>
/// <param name="Accessor">Vault's mount accessor.</param>
/// <param name="Description">Free text.</param>
/// <param name="Options">Engine options (<c>version</c>).</param>
internal sealed record MountEntry(string Path, string Type, string Uuid, string Accessor, string Description, Dictionary<string, string> Options)
{
    /// <summary>The sys/mounts representation.</summary>
    public JsonObject ToJson() => new()
    {
        ["accessor"] = Accessor,
        ["config"] = new JsonObject { ["default_lease_ttl"] = 0, ["max_lease_ttl"] = 0, ["force_no_cache"] = false },
        ["description"] = Description,
        ["external_entropy_access"] = false,
        ["local"] = false,
        ["options"] = JsonValues.StringMap(Options),
        ["seal_wrap"] = false,
        ["type"] = Type,
        ["uuid"] = Uuid,
    };
}

/// <summary>The secrets engines mounted under the barrier at <c>core/mounts</c>; paths resolve by longest prefix.</summary>
internal sealed class MountTable
{
    /// <summary>Where the table is stored.</summary>
    public const string StoragePath = "core/mounts";

    private static readonly string[] Reserved = ["sys/", "auth/", "cubbyhole/", "identity/", "audit/", "morphisms/"];
    private readonly ISecureStorage _storage;
    private readonly TimeProvider _time;
    private readonly SemaphoreSlim _lock = new(1, 1);
    private ImmutableDictionary<string, Mounted> _mounts = ImmutableDictionary<string, Mounted>.Empty;

    public MountTable(ISecureStorage storage, TimeProvider time, KvWatch? kvWatch = null)
    {
        KvWatch = kvWatch ?? new KvWatch(KmsServerOptions.DefaultMaxKvWaiters, time);
        _storage = storage;
        _time = time;
    }

    /// <summary>Long-poll reads across every KV mount (one limit, woken together at seal).</summary>
    public KvWatch KvWatch { get; }

    /// <summary>The mounted engines.</summary>
    public IEnumerable<MountEntry> Entries => _mounts.Values.Select(m => m.Entry).OrderBy(e => e.Path, StringComparer.Ordinal);

    /// <summary>
    /// The table written at init: KV v2 at <c>secret/</c>, PKI at <c>pki/</c> (rooted in the KMS root CA, so
    /// attest-login can issue function certificates) and transit at <c>transit/</c>.
    /// </summary>
    public static List<MountEntry> Initial() =>
    [
        NewEntry("secret/", "kv", "key/value secret storage"),
        NewEntry("pki/", "pki", "function certificates under the KMS root CA") with { Options = new() { [Pki.PkiBackend.KmsRootOption] = "true" } },
        NewEntry("transit/", "transit", "encryption as a service") with { Options = [] },
    ];

    /// <summary>Loads the table and creates the backends.</summary>
    public async Task LoadAsync(CancellationToken ct)
    {
        var entries = await _storage.GetJsonAsync<List<MountEntry>>(StoragePath, ct).ConfigureAwait(false) ?? [];
        _mounts = entries.ToImmutableDictionary(e => e.Path, Mount, StringComparer.Ordinal);
    }

    /// <summary>The engine serving <paramref name="path"/> and its mount path, by longest prefix.</summary>
    public (MountEntry Entry, ILogicalBackend Backend)? Resolve(string path)
    {
        var mounts = _mounts;
        (MountEntry, ILogicalBackend)? best = null;
        var bestLength = -1;
        foreach (var (mountPath, m) in mounts)
        {
            if ((path.StartsWith(mountPath, StringComparison.Ordinal) || path + "/" == mountPath) && mountPath.Length > bestLength)
            {
                best = (m.Entry, m.Backend);
                bestLength = mountPath.Length;
            }
        }

        return best;
    }

    /// <summary>
    /// Whether <paramref name="path"/>, a KV v2 data path (<c>MOUNT/data/KEY</c>), names a key with metadata; false for
    /// a path no KV mount serves as data, where nothing can be written.
    /// </summary>
    public Task<bool> KvKeyExistsAsync(string path, CancellationToken ct) =>
        Resolve(path) is ({ } entry, KvV2Backend kv) && path.StartsWith(entry.Path + "data/", StringComparison.Ordinal)
            ? kv.KeyExistsAsync(path[(entry.Path.Length + "data/".Length)..], ct)
            : Task.FromResult(false);

    /// <summary>The mount at exactly <paramref name="path"/>, or null.</summary>
    public MountEntry? Get(string path) => _mounts.TryGetValue(NormalizePath(path), out var m) ? m.Entry : null;

    /// <summary>
    /// Mounts a new engine (<c>sys/mounts/PATH</c>). The <c>kms_root</c> option is refused, whatever its value: only
    /// init roots a mount in the KMS root CA (<see cref="Initial"/>), since clients accept any chain to that root that
    /// carries an attested identity.
    /// </summary>
    public async Task MountAsync(string path, string type, string description, Dictionary<string, string> options, CancellationToken ct)
    {
        path = NormalizePath(path);
        if (options.ContainsKey(Pki.PkiBackend.KmsRootOption))
        {
            throw KmsException.BadRequest($"invalid option '{Pki.PkiBackend.KmsRootOption}': only the KMS sets it, on the pki/ mount init creates ({Pki.PkiBackend.KmsRootRule})");
        }

        if (Reserved.Any(r => path.StartsWith(r, StringComparison.Ordinal) || r.StartsWith(path, StringComparison.Ordinal)))
        {
            throw KmsException.BadRequest($"cannot mount at '{path}': the path is reserved");
        }

        var (engineType, version) = (type, options.GetValueOrDefault("version")) switch
        {
            ("kv-v2", _) or ("kv", "2") => ("kv", "2"),
            ("pki", _) => ("pki", (string?)null),
            ("transit", _) => ("transit", null),
            ("kv", null or "" or "1") => throw KmsException.BadRequest("KV version 1 is not supported: mount with options {\"version\": \"2\"} or type kv-v2"),
            _ => throw KmsException.BadRequest($"unsupported secrets engine type '{type}': this KMS serves kv (version 2), pki and transit"),
        };

        await _lock.WaitAsync(ct).ConfigureAwait(false);
        try
        {
            if (_mounts.Keys.FirstOrDefault(p => p.StartsWith(path, StringComparison.Ordinal) || path.StartsWith(p, StringComparison.Ordinal)) is { } clash)
            {
                throw KmsException.BadRequest($"path is already in use at {clash}");
            }

            var entry = NewEntry(path, engineType, description) with
            {
                Options = version is not null ? new() { ["version"] = version } : [],
            };
            var next = _mounts.Add(path, Mount(entry));
            await _storage.PutJsonAsync(StoragePath, next.Values.Select(m => m.Entry).ToList(), ct).ConfigureAwait(false);
            _mounts = next;
        }
        finally
        {
            _lock.Release();
        }
    }

    /// <summary>
    /// Unmounts an engine and deletes all of its data in the same transaction. Requests already dispatched to the mount
    /// hold its backend and storage view, so the view is closed first (their later storage operations, and new ones,
    /// get a 503 naming the mount; its parked long-poll reads are woken to get it too) and the operations under way
    /// are waited for (as long as <paramref name="ct"/> allows; the view is reopened if it ends the wait): only then
    /// are the keys listed, so no write can land under the prefix after the listing and outlive the mount.
    /// </summary>
    public async Task UnmountAsync(string path, CancellationToken ct)
    {
        path = NormalizePath(path);
        await _lock.WaitAsync(ct).ConfigureAwait(false);
        try
        {
            if (!_mounts.TryGetValue(path, out var m))
            {
                return;
            }

            await m.View.CloseAsync($"the mount at '{path}' is being disabled (DELETE sys/mounts/{path[..^1]}): its data is deleted and nothing more is read or written there", ct).ConfigureAwait(false);
            try
            {
                (m.Backend as KvV2Backend)?.WakeWaiters();
                var next = _mounts.Remove(path);
                var prefix = StoragePrefix(m.Entry);
                var ops = (await _storage.ListRecursiveAsync(prefix, ct).ConfigureAwait(false)).Select(k => (prefix + k, (byte[]?)null)).ToList();
                ops.Add((StoragePath, SecureStorageJson.ToJson(next.Values.Select(v => v.Entry).ToList())));
                await _storage.TransactAsync(ops, ct).ConfigureAwait(false);
                _mounts = next;
            }
            catch
            {
                // Still mounted: serve it again.
                m.View.Reopen();
                throw;
            }
        }
        finally
        {
            _lock.Release();
        }
    }

    /// <summary>Normalises a mount path to <c>a/b/</c> and validates it.</summary>
    public static string NormalizePath(string path)
    {
        var p = path.Trim('/');
        if (p.Length == 0 || p.Length > 256 || p.Split('/').Any(s => s is "" or "." or "..")
            || !p.All(c => char.IsAsciiLetterOrDigit(c) || c is '-' or '_' or '.' or '/'))
        {
            throw KmsException.BadRequest("invalid mount path: use letters, digits, '-', '_', '.' and '/' segments");
        }

        return p + "/";
    }

    private Mounted Mount(MountEntry entry)
    {
        var view = new PrefixedStorage(_storage, StoragePrefix(entry));
        ILogicalBackend backend = entry.Type switch
        {
            "pki" => new Pki.PkiBackend(view, _storage, entry.Options.GetValueOrDefault(Pki.PkiBackend.KmsRootOption) == "true", _time),
            "transit" => new Transit.TransitBackend(view, _time),
            _ => new KvV2Backend(view, _time, KvWatch),
        };
        return new Mounted(entry, backend, view);
    }

    private static string StoragePrefix(MountEntry entry) => "logical/" + entry.Uuid + "/";

    private static MountEntry NewEntry(string path, string type, string description) => new(
        path,
        type,
        Guid.NewGuid().ToString(),
        type + "_" + Convert.ToHexStringLower(RandomNumberGenerator.GetBytes(4)),
        description,
        new() { ["version"] = "2" });

    /// <summary>A mounted engine: its entry, its backend and the storage view the backend writes through.</summary>
    private sealed record Mounted(MountEntry Entry, ILogicalBackend Backend, PrefixedStorage View);
}
