using System.Text.Json.Nodes;
using Morphisms.Kms.Http;

namespace Morphisms.Kms.Tokens;

/// <summary>The wire shapes of tokens: the <c>auth</c> block and lookup <c>data</c>.</summary>
internal static class TokenResponses
{
    /// <summary>The envelope's <c>auth</c> object for a newly issued or renewed token.</summary>
    public static JsonObject Auth(string? token, TokenEntry entry, long leaseSeconds) => new()
    {
        ["client_token"] = token ?? "",
        ["accessor"] = entry.Accessor,
        ["policies"] = JsonValues.Strings(entry.Policies),
        ["token_policies"] = JsonValues.Strings(entry.Policies),
        ["metadata"] = Meta(entry),
        ["lease_duration"] = leaseSeconds,
        ["renewable"] = entry.Renewable,
        ["entity_id"] = "",
        ["token_type"] = "service",
        ["orphan"] = entry.Orphan,
        ["mfa_requirement"] = null,
        ["num_uses"] = Math.Max(0, entry.NumUses),
    };

    /// <summary>The lookup <c>data</c>; <paramref name="token"/> is empty for lookups by accessor.</summary>
    public static JsonObject Lookup(string token, TokenEntry entry, long ttlSeconds)
    {
        var data = new JsonObject
        {
            ["accessor"] = entry.Accessor,
            ["creation_time"] = entry.CreationTime.ToUnixTimeSeconds(),
            ["creation_ttl"] = entry.CreationTtl,
            ["display_name"] = entry.DisplayName,
            ["entity_id"] = "",
            ["expire_time"] = entry.ExpireTime is { } e ? Timestamps.Rfc3339(e) : null,
            ["explicit_max_ttl"] = entry.ExplicitMaxTtl,
            ["id"] = token,
            ["issue_time"] = Timestamps.Rfc3339(entry.CreationTime),
            ["meta"] = Meta(entry),
            ["num_uses"] = Math.Max(0, entry.NumUses),
            ["orphan"] = entry.Orphan,
            ["path"] = entry.Path,
            ["policies"] = JsonValues.Strings(entry.Policies),
            ["renewable"] = entry.Renewable,
            ["ttl"] = ttlSeconds,
            ["type"] = "service",
        };
        if (entry.Period > 0)
        {
            data["period"] = entry.Period;
        }

        if (entry.LastRenewal is { } renewed)
        {
            data["last_renewal"] = Timestamps.Rfc3339(renewed);
            data["last_renewal_time"] = renewed.ToUnixTimeSeconds();
        }

        return data;
    }

    private static JsonObject? Meta(TokenEntry entry) =>
        entry.Meta.Count == 0 ? null : JsonValues.StringMap(entry.Meta.OrderBy(m => m.Key, StringComparer.Ordinal));
}
