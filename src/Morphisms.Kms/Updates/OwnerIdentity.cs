using Morphisms.Kms.Tokens;

namespace Morphisms.Kms.Updates;

/// <summary>
/// Who an owner is: the <c>morphisms_owner</c> metadata of the caller's token. Only a root token may put it on a
/// token (<c>auth/token/create</c> refuses it otherwise), so an owner's name is granted by the KMS administrator
/// once and cannot be minted by anyone who merely may create tokens; the name is matched against the function's
/// <c>owners</c> list exactly.
/// </summary>
internal static class OwnerIdentity
{
    /// <summary>The metadata key.</summary>
    public const string MetadataKey = "morphisms_owner";

    /// <summary>The owner the token speaks for, or null.</summary>
    public static string? Of(TokenEntry token) =>
        token.Meta.TryGetValue(MetadataKey, out var owner) && owner.Length > 0 ? owner : null;

    /// <summary>Whether the token speaks for one of <paramref name="function"/>'s owners.</summary>
    public static bool Owns(TokenEntry token, Functions.FunctionRecord function) =>
        Of(token) is { } owner && function.Owners.Contains(owner, StringComparer.Ordinal);
}
