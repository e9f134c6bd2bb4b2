using System.Buffers.Binary;
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
/// catches deliberate edits — dropped entries, stale ciphertexts spliced in — which a recomputed hash would not.
/// </summary>
internal sealed class StorageSnapshot
{
    /// <summary>The format tag, part of the canonical encoding.</summary>
    public const string Format = "morphisms-kms-snapshot/1";

    /// <summary>
    /// Plaintext marker written by a restore whose HMAC this KMS could not check (another root key): the first
    /// unseal with the snapshot's shares checks it before serving anything.
    /// </summary>
    public const string PendingHmacPath = "core/snapshot-hmac";

    private StorageSnapshot(IReadOnlyList<KeyValuePair<string, byte[]>> entries, byte[] hmac)
    {
        Entries = entries;
        Hmac = hmac;
    }

    /// <summary>The entries, ordinally sorted by key.</summary>
    public IReadOnlyList<KeyValuePair<string, byte[]>> Entries { get; }

    /// <summary>HMAC-SHA256 of the canonical encoding under the snapshot subkey of the root key.</summary>
    public byte[] Hmac { get; }

    /// <summary>Builds a snapshot of <paramref name="entries"/>, authenticated with <paramref name="macKey"/>.</summary>
    public static StorageSnapshot Create(IReadOnlyList<KeyValuePair<string, byte[]>> entries, ReadOnlySpan<byte> macKey)
    {
        var kept = entries.Where(e => e.Key != PendingHmacPath).OrderBy(e => e.Key, StringComparer.Ordinal).ToList();
        return new StorageSnapshot(kept, HMACSHA256.HashData(macKey, Canonical(kept)));
    }

    /// <summary>Whether the snapshot authenticates under <paramref name="macKey"/>.</summary>
    public bool Verifies(ReadOnlySpan<byte> macKey) => VerifyHmac(Entries, Hmac, macKey);

    /// <summary>Checks a stored set of entries against an HMAC in constant time.</summary>
    public static bool VerifyHmac(IReadOnlyList<KeyValuePair<string, byte[]>> entries, ReadOnlySpan<byte> hmac, ReadOnlySpan<byte> macKey) =>
        CryptographicOperations.FixedTimeEquals(HMACSHA256.HashData(macKey, Canonical(entries.Where(e => e.Key != PendingHmacPath).OrderBy(e => e.Key, StringComparer.Ordinal).ToList())), hmac);

    /// <summary>The JSON document.</summary>
    public JsonObject ToJson(DateTimeOffset now) => new()
    {
        ["format"] = Format,
        ["created_at"] = Timestamps.Rfc3339(now),
        ["entries"] = new JsonArray([.. Entries.Select(e => (JsonNode)new JsonObject { ["key"] = e.Key, ["value"] = Convert.ToBase64String(e.Value) })]),
        ["sha256"] = Convert.ToHexStringLower(SHA256.HashData(Canonical(Entries))),
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

        if (Text(doc, "format") != Format)
        {
            throw Bad($"'format': expected \"{Format}\"");
        }

        _ = Text(doc, "created_at");
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

            if (!seen.Add(key) || key == PendingHmacPath)
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
        if (!CryptographicOperations.FixedTimeEquals(sha, SHA256.HashData(Canonical(entries))))
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

        return new StorageSnapshot(entries, hmac);
    }

    /// <summary>format ‖ for each entry: u32 BE key length ‖ key (UTF-8) ‖ u32 BE value length ‖ value.</summary>
    private static byte[] Canonical(IReadOnlyList<KeyValuePair<string, byte[]>> entries)
    {
        using var stream = new MemoryStream();
        stream.Write(Encoding.UTF8.GetBytes(Format));
        Span<byte> length = stackalloc byte[4];
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

    private static string Text(JsonObject doc, string name) =>
        doc[name] is JsonValue v && v.TryGetValue<string>(out var s) ? s : throw Bad($"'{name}': expected a string");

    private static byte[] Hex(JsonObject doc, string name)
    {
        var s = Text(doc, name);
        return s.Length == 64 && s.All(char.IsAsciiHexDigit) ? Convert.FromHexString(s) : throw Bad($"'{name}': expected 64 hex digits");
    }

    private static KmsException Bad(string message) => KmsException.BadRequest("invalid snapshot: " + message);
}
