namespace Morphisms.Client.Trust;

/// <summary>
/// <see cref="KmsTrustStore.Save"/> was asked to keep the pinned root CA of a KMS, and the record to save has another:
/// nothing was written. A KMS keeps its root CA across restarts and upgrades, so a new one is a different KMS.
/// </summary>
public sealed class KmsRootChangedException(KmsTrustRecord pinned, KmsTrustRecord presented)
    : Exception($"{pinned.KmsUrl} is pinned to root CA sha256 {pinned.RootCaSha256}, but the KMS now presents root CA sha256 {presented.RootCaSha256}")
{
    /// <summary>The record in the store, left as it was.</summary>
    public KmsTrustRecord Pinned { get; } = pinned;

    /// <summary>The record that was not saved.</summary>
    public KmsTrustRecord Presented { get; } = presented;
}
