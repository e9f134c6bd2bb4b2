using System.Text;
using System.Text.Json.Nodes;

namespace Morphisms.Kms.Tokens;

/// <summary>What a new token should be; auth methods (token create, attest-login) build this.</summary>
internal sealed record TokenCreateRequest
{
    /// <summary>Final policy names (already checked against the parent).</summary>
    public required IReadOnlyList<string> Policies { get; init; }

    /// <summary>Metadata.</summary>
    public IReadOnlyDictionary<string, string> Meta { get; init; } = new Dictionary<string, string>();

    /// <summary>The parent's hash, or null for an orphan.</summary>
    public string? ParentHash { get; init; }

    /// <summary>Requested TTL; null means the default (or none for root tokens).</summary>
    public TimeSpan? Ttl { get; init; }

    /// <summary>A hard cap on the lifetime; zero for none.</summary>
    public TimeSpan ExplicitMaxTtl { get; init; }

    /// <summary>Makes the token periodic.</summary>
    public TimeSpan Period { get; init; }

    /// <summary>Whether the token may be renewed.</summary>
    public bool Renewable { get; init; } = true;

    /// <summary>Uses allowed; 0 = unlimited.</summary>
    public long NumUses { get; init; }

    /// <summary>The display name.</summary>
    public string DisplayName { get; init; } = "token";

    /// <summary>The creating path.</summary>
    public string Path { get; init; } = "auth/token/create";

    /// <summary>A caller-chosen token value (root only), or null to generate one.</summary>
    public string? CustomId { get; init; }

    /// <summary>Data kept with the token and never returned.</summary>
    public JsonObject? InternalData { get; init; }

    // A record's ToString prints every property: a chosen token value stays out of log lines, exception messages and
    // debugger displays (only whether there is one shows), the rest stays there to debug with.
    private bool PrintMembers(StringBuilder builder)
    {
        builder.Append("Policies = ").Append(Policies).Append(", Meta = ").Append(Meta).Append(", ParentHash = ").Append(ParentHash)
            .Append(", Ttl = ").Append(Ttl).Append(", ExplicitMaxTtl = ").Append(ExplicitMaxTtl).Append(", Period = ").Append(Period)
            .Append(", Renewable = ").Append(Renewable).Append(", NumUses = ").Append(NumUses).Append(", DisplayName = ").Append(DisplayName)
            .Append(", Path = ").Append(Path).Append(", CustomId = ").Append(CustomId is null ? "" : "[redacted]")
            .Append(", InternalData = ").Append(InternalData);
        return true;
    }
}
