namespace Morphisms.Kms.Seal;

/// <summary>
/// A rekey whose new shares were handed out but not yet verified, stored under the barrier at
/// <see cref="StoragePath"/>: the new seal layout and the root key wrapped under the new unseal key. It replaces
/// <c>core/root-key</c> and <c>core/seal-config</c> only once a threshold of the new shares opens it, so a reply
/// lost on its way to the share holders leaves the current shares in force. Under the barrier, because whoever
/// holds the new shares could otherwise copy it over <c>core/root-key</c> and unseal with shares never verified.
/// </summary>
/// <param name="Nonce">The rekey attempt's nonce.</param>
/// <param name="SecretShares">How many new shares were handed out.</param>
/// <param name="SecretThreshold">How many of them unseal.</param>
/// <param name="RootKey">The root key wrapped under the new unseal key, as <c>core/root-key</c> will hold it.</param>
internal sealed record PendingRekey(string Nonce, int SecretShares, int SecretThreshold, byte[] RootKey)
{
    /// <summary>The storage key (barrier-encrypted).</summary>
    public const string StoragePath = "core/rekey-pending";
}
