namespace Morphisms.Kms.Tokens;

/// <summary>Token lifetime limits.</summary>
/// <param name="DefaultTtl">TTL of a token created without one (Vault: 768h).</param>
/// <param name="MaxTtl">Upper bound of any token's lifetime from its creation (Vault: 768h).</param>
internal sealed record TokenStoreOptions(TimeSpan DefaultTtl, TimeSpan MaxTtl);
