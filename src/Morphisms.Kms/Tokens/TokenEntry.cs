using System.Text.Json.Nodes;
using System.Text.Json.Serialization;

namespace Morphisms.Kms.Tokens;

/// <summary>
/// A stored token. The token itself is never stored: <see cref="Hash"/> is its HMAC under a key that lives
/// behind the barrier, and the entry is keyed by that hash.
/// </summary>
internal sealed class TokenEntry
{
    /// <summary>HMAC-SHA256 of the token (hex), the storage key.</summary>
    public required string Hash { get; init; }

    /// <summary>The accessor: names the token for lookup and revocation without granting its use.</summary>
    public required string Accessor { get; init; }

    /// <summary>The parent's hash, or null for an orphan.</summary>
    public string? ParentHash { get; set; }

    /// <summary>Sorted, de-duplicated policy names.</summary>
    public List<string> Policies { get; init; } = [];

    /// <summary>Client-supplied metadata.</summary>
    public Dictionary<string, string> Meta { get; init; } = [];

    /// <summary>A non-secret label.</summary>
    public string DisplayName { get; init; } = "token";

    /// <summary>Uses left; 0 means unlimited.</summary>
    public long NumUses { get; set; }

    /// <summary>When the token was created.</summary>
    public DateTimeOffset CreationTime { get; init; }

    /// <summary>The TTL at creation (seconds), also the renewal default.</summary>
    public long CreationTtl { get; init; }

    /// <summary>A hard cap on the lifetime from creation (seconds), 0 for none.</summary>
    public long ExplicitMaxTtl { get; init; }

    /// <summary>A periodic token's period (seconds), 0 for none.</summary>
    public long Period { get; init; }

    /// <summary>When the token expires, or null for never (root tokens).</summary>
    public DateTimeOffset? ExpireTime { get; set; }

    /// <summary>When it was last renewed.</summary>
    public DateTimeOffset? LastRenewal { get; set; }

    /// <summary>Whether renew is allowed.</summary>
    public bool Renewable { get; init; }

    /// <summary>The path that created the token (<c>auth/token/create</c>, <c>auth/attest/login</c>).</summary>
    public string Path { get; init; } = "auth/token/create";

    /// <summary>Data the issuing auth method keeps with the token (e.g. an attestation result); never returned.</summary>
    public JsonObject? InternalData { get; init; }

    /// <summary>Whether the token has no parent.</summary>
    [JsonIgnore]
    public bool Orphan => ParentHash is null;

    /// <summary>Whether the policies include root.</summary>
    [JsonIgnore]
    public bool IsRoot => Policies.Contains(Morphisms.Kms.Policies.BuiltinPolicies.Root);
}
