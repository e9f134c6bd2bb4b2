using System.Text.Json.Serialization;

namespace Morphisms.Kms.Seal;

/// <summary>The seal's public parameters, stored in plaintext at <c>core/seal-config</c>: their presence means "initialised".</summary>
/// <param name="Type">The seal type (<c>shamir</c>).</param>
/// <param name="SecretShares">How many unseal keys were handed out.</param>
/// <param name="SecretThreshold">How many are needed to unseal.</param>
internal sealed record SealConfig(
    [property: JsonPropertyName("type")] string Type,
    [property: JsonPropertyName("secret_shares")] int SecretShares,
    [property: JsonPropertyName("secret_threshold")] int SecretThreshold)
{
    /// <summary>The storage key.</summary>
    public const string StoragePath = "core/seal-config";

    /// <summary>Where the root key is kept, encrypted under the key the shares reconstruct.</summary>
    public const string RootKeyPath = "core/root-key";

    /// <summary>
    /// Checks the parameters as Vault does, returning the problem or null. The problem names the request's parameters:
    /// <c>secret_*</c> by default, <c>recovery_*</c> when init took them (auto-unseal).
    /// </summary>
    public static string? Validate(int shares, int threshold, string sharesName = "secret_shares", string thresholdName = "secret_threshold") => (shares, threshold) switch
    {
        (< 1, _) => $"invalid seal configuration: {sharesName} must be at least one",
        (_, < 1) => $"invalid seal configuration: {thresholdName} must be at least one",
        ( > Shamir.MaxShares, _) => $"invalid seal configuration: {sharesName} cannot exceed {Shamir.MaxShares}",
        var (s, t) when t > s => $"invalid seal configuration: {thresholdName} cannot be larger than {sharesName}",
        ( > 1, 1) => $"invalid seal configuration: {thresholdName} must be greater than one for multiple shares",
        (1, > 1) => $"invalid seal configuration: {thresholdName} cannot be larger than {sharesName}",
        _ => null,
    };
}
