using System.Buffers.Binary;
using System.Globalization;
using System.Security.Cryptography;
using System.Text;
using System.Text.Json.Nodes;
using Morphisms.Kms.Http;
using Morphisms.Kms.Seal;

namespace Morphisms.Kms.Snapshots;

/// <summary>
/// A backup: every physical entry verbatim — barrier ciphertexts, the keyring wrapped by the root key, the root key
/// wrapped by the unseal key, the public seal config — so it is useless without the unseal shares. Shape:
/// <c>{"format","created_at","entries":[{"key","value"(base64)}],"sha256","hmac"}</c>. <c>sha256</c> over the
/// canonical encoding catches truncation and corruption without any key; <c>hmac</c> (keyed by a root-key subkey)
/// catches deliberate edits — dropped entries, stale ciphertexts spliced in, a later <c>created_at</c> on an old
/// snapshot — which a recomputed hash would not. Both cover the format tag and <c>created_at</c> as well as the entries.
/// </summary>
internal sealed class StorageSnapshot
{
    /// <summary>The format tag, part of the canonical encoding.</summary>
    public const string Format = "morphisms-kms-snapshot/2";

    /// <summary>
    /// The previous format, whose <c>created_at</c> was outside the hash and HMAC: refused, since nothing shows its
    /// date is the one it was taken at (the project is pre-release; a new snapshot is one GET away).
    /// </summary>
    public const string PreviousFormat = "morphisms-kms-snapshot/1";

    /// <summary>
    /// The longest key a snapshot may hold, in UTF-8 bytes. PostgreSQL's primary-key index refuses an entry over 2704
    /// bytes, which an incompressible key reaches at 2693; the margin keeps that true whatever the server's build. Only
    /// a store that already holds a longer key (a KV path that long, which SQLite takes) makes a snapshot refused here.
    /// </summary>
    public const int MaxKeyBytes = 2048;

    // created_at exactly as the KMS writes it (Timestamps.Rfc3339), so the MACed text has one spelling.
    private const string CreatedAtFormat = "yyyy-MM-dd'T'HH:mm:ss.fffffff'Z'";

    /// <summary>
    /// Plaintext marker written by a restore whose HMAC this KMS could not check (another root key): the first
    /// unseal with the snapshot's shares checks it before serving anything.
    /// </summary>
    public const string PendingHmacPath = "core/snapshot-hmac";

    /// <summary>
    /// Plaintext marker written by every restore: the first unseal after it adds a barrier key term before serving
    /// anything. The snapshot's active term may have encrypted more, after the snapshot was taken, than the count the
    /// snapshot holds, so its count can no longer bound that key's random-nonce encryptions; a new term starts at zero.
    /// </summary>
    public const string RotatePendingPath = "core/snapshot-rotate";

    /// <summary>Whether <paramref name="key"/> is one of the restore's own markers, never part of a snapshot.</summary>
    public static bool IsRestoreMarker(string key) => key is PendingHmacPath or RotatePendingPath;

    private StorageSnapshot(string createdAt, IReadOnlyList<KeyValuePair<string, byte[]>> entries, byte[] hmac)
    {
        CreatedAt = createdAt;
        Entries = entries;
        Hmac = hmac;
    }

    /// <summary>When the snapshot was taken (RFC 3339, UTC), authenticated with the entries.</summary>
    public string CreatedAt { get; }

    /// <summary>The entries, ordinally sorted by key.</summary>
    public IReadOnlyList<KeyValuePair<string, byte[]>> Entries { get; }

    /// <summary>HMAC-SHA256 of the canonical encoding under the snapshot subkey of the root key.</summary>
    public byte[] Hmac { get; }

    /// <summary>
    /// Builds a snapshot of <paramref name="entries"/> taken at <paramref name="createdAt"/>, authenticated with
    /// <paramref name="macKey"/>.
    /// </summary>
    public static StorageSnapshot Create(IReadOnlyList<KeyValuePair<string, byte[]>> entries, DateTimeOffset createdAt, ReadOnlySpan<byte> macKey)
    {
        var kept = entries.Where(e => !IsRestoreMarker(e.Key)).OrderBy(e => e.Key, StringComparer.Ordinal).ToList();
        var at = Timestamps.Rfc3339(createdAt);
        return new StorageSnapshot(at, kept, HMACSHA256.HashData(macKey, Canonical(at, kept)));
    }

    /// <summary>Whether the snapshot authenticates under <paramref name="macKey"/>.</summary>
    public bool Verifies(ReadOnlySpan<byte> macKey) =>
        CryptographicOperations.FixedTimeEquals(HMACSHA256.HashData(macKey, Canonical(CreatedAt, Entries)), Hmac);

    /// <summary>
    /// The value of <see cref="PendingHmacPath"/> for a restore checked at the next unseal: the HMAC (32 bytes) then
    /// <c>created_at</c> (UTF-8), which the HMAC covers but the restored entries do not hold.
    /// </summary>
    public byte[] PendingMarker() => [.. Hmac, .. Encoding.UTF8.GetBytes(CreatedAt)];

    /// <summary>Checks a stored set of entries against a <see cref="PendingMarker"/> in constant time.</summary>
    public static bool VerifyPending(IReadOnlyList<KeyValuePair<string, byte[]>> entries, byte[] marker, ReadOnlySpan<byte> macKey)
    {
        if (marker.Length < 32)
        {
            return false;
        }

        var kept = entries.Where(e => !IsRestoreMarker(e.Key)).OrderBy(e => e.Key, StringComparer.Ordinal).ToList();
        var createdAt = Encoding.UTF8.GetString(marker, 32, marker.Length - 32);
        return CryptographicOperations.FixedTimeEquals(HMACSHA256.HashData(macKey, Canonical(createdAt, kept)), marker.AsSpan(0, 32));
    }

    /// <summary>The JSON document.</summary>
    public JsonObject ToJson() => new()
    {
        ["format"] = Format,
        ["created_at"] = CreatedAt,
        ["entries"] = new JsonArray([.. Entries.Select(e => (JsonNode)new JsonObject { ["key"] = e.Key, ["value"] = Convert.ToBase64String(e.Value) })]),
        ["sha256"] = Convert.ToHexStringLower(SHA256.HashData(Canonical(CreatedAt, Entries))),
        ["hmac"] = Convert.ToHexStringLower(Hmac),
    };

    /// <summary>Parses and checks a document: every problem is a 400 naming the field, before anything is written.</summary>
    public static StorageSnapshot Parse(JsonObject doc)
    {
        foreach (var name in doc.Select(p => p.Key))
        {
            if (name is not ("format" or "created_at" or "entries" or "sha256" or "hmac"))
            {
                throw Bad($"'{name}': unknown field");
            }
        }

        var format = Text(doc, "format");
        if (format == PreviousFormat)
        {
            throw Bad($"'format': \"{PreviousFormat}\" is no longer restorable (its created_at is not authenticated, so it could pass an old snapshot off as a recent one); take a new snapshot");
        }

        if (format != Format)
        {
            throw Bad($"'format': expected \"{Format}\"");
        }

        var createdAt = Text(doc, "created_at");
        if (!DateTimeOffset.TryParseExact(createdAt, CreatedAtFormat, CultureInfo.InvariantCulture, DateTimeStyles.AssumeUniversal, out _))
        {
            throw Bad("'created_at': expected an RFC 3339 UTC time as the KMS writes it (yyyy-MM-ddTHH:mm:ss.fffffffZ)");
        }
        if (doc["entries"] is not JsonArray array)
        {
            throw Bad("'entries': expected an array");
        }

        var entries = new List<KeyValuePair<string, byte[]>>(array.Count);
        var seen = new HashSet<string>(StringComparer.Ordinal);
        for (var i = 0; i < array.Count; i++)
        {
            if (array[i] is not JsonObject entry || entry.Count != 2
                || entry["key"] is not JsonValue k || !k.TryGetValue<string>(out var key) || key.Length == 0
                || entry["value"] is not JsonValue v || !v.TryGetValue<string>(out var value64))
            {
                throw Bad($"'entries[{i}]': expected {{\"key\": non-empty string, \"value\": base64 string}}");
            }

            // Checked here, not left to the storage: its refusal would come only after the KMS had sealed.
            if (KeyProblem(key) is { } problem)
            {
                throw Bad($"'entries[{i}].key': {problem}");
            }

            if (!seen.Add(key) || IsRestoreMarker(key))
            {
                throw Bad($"'entries[{i}].key': '{key}' is duplicated or reserved");
            }

            var buffer = new byte[value64.Length];
            if (!Convert.TryFromBase64String(value64, buffer, out var written))
            {
                throw Bad($"'entries[{i}].value': not valid base64");
            }

            entries.Add(new(key, buffer[..written]));
        }

        entries.Sort((a, b) => string.CompareOrdinal(a.Key, b.Key));
        var sha = Hex(doc, "sha256");
        if (!CryptographicOperations.FixedTimeEquals(sha, SHA256.HashData(Canonical(createdAt, entries))))
        {
            throw Bad("'sha256': does not match the entries (the snapshot is truncated or corrupted)");
        }

        var hmac = Hex(doc, "hmac");
        foreach (var required in new[] { SealConfig.StoragePath, SealConfig.RootKeyPath, Barrier.BarrierStorage.KeyringPath })
        {
            if (!seen.Contains(required))
            {
                throw Bad($"'entries': the snapshot has no '{required}', so it could never be unsealed");
            }
        }

        var config = entries.First(e => e.Key == SealConfig.StoragePath).Value;
        try
        {
            var parsed = System.Text.Json.JsonSerializer.Deserialize<SealConfig>(config);
            if (parsed is null || parsed.Type != "shamir" || SealConfig.Validate(parsed.SecretShares, parsed.SecretThreshold) is not null)
            {
                throw Bad($"'entries': '{SealConfig.StoragePath}' is not a valid seal configuration");
            }
        }
        catch (System.Text.Json.JsonException)
        {
            throw Bad($"'entries': '{SealConfig.StoragePath}' is not a valid seal configuration");
        }

        return new StorageSnapshot(createdAt, entries, hmac);
    }

    /// <summary>
    /// format ‖ u32 BE created_at length ‖ created_at (UTF-8) ‖ for each entry: u32 BE key length ‖ key (UTF-8) ‖
    /// u32 BE value length ‖ value.
    /// </summary>
    private static byte[] Canonical(string createdAt, IReadOnlyList<KeyValuePair<string, byte[]>> entries)
    {
        using var stream = new MemoryStream();
        stream.Write(Encoding.UTF8.GetBytes(Format));
        Span<byte> length = stackalloc byte[4];
        var at = Encoding.UTF8.GetBytes(createdAt);
        BinaryPrimitives.WriteUInt32BigEndian(length, (uint)at.Length);
        stream.Write(length);
        stream.Write(at);
        foreach (var (key, value) in entries)
        {
            var k = Encoding.UTF8.GetBytes(key);
            BinaryPrimitives.WriteUInt32BigEndian(length, (uint)k.Length);
            stream.Write(length);
            stream.Write(k);
            BinaryPrimitives.WriteUInt32BigEndian(length, (uint)value.Length);
            stream.Write(length);
            stream.Write(value);
        }

        return stream.ToArray();
    }

    /// <summary>Why a storage could not hold <paramref name="key"/> as it is, or null when every one can.</summary>
    private static string? KeyProblem(string key)
    {
        if (key.Contains('\0', StringComparison.Ordinal))
        {
            return "contains U+0000, which PostgreSQL cannot store in a key";
        }

        var length = Encoding.UTF8.GetByteCount(key);
        return length > MaxKeyBytes ? $"is {length} bytes of UTF-8, over the {MaxKeyBytes} a stored key may have (PostgreSQL's index holds no more)" : null;
    }

    private static string Text(JsonObject doc, string name) =>
        doc[name] is JsonValue v && v.TryGetValue<string>(out var s) ? s : throw Bad($"'{name}': expected a string");

    private static byte[] Hex(JsonObject doc, string name)
    {
        var s = Text(doc, name);
        return s.Length == 64 && s.All(char.IsAsciiHexDigit) ? Convert.FromHexString(s) : throw Bad($"'{name}': expected 64 hex digits");
    }

    private static KmsException Bad(string message) => KmsException.BadRequest("invalid snapshot: " + message);
}
