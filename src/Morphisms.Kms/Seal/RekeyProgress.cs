namespace Morphisms.Kms.Seal;

/// <summary>
/// One rekey attempt (<c>sys/rekey/init</c>): the new share layout and the current unseal shares collected so
/// far, in memory only. The nonce binds every <c>sys/rekey/update</c> to this attempt, so a share holder cannot
/// be tricked into feeding a different one.
/// </summary>
internal sealed class RekeyProgress(int newShares, int newThreshold)
{
    /// <summary>The attempt's nonce.</summary>
    public string Nonce { get; } = Guid.NewGuid().ToString();

    /// <summary>How many shares the new unseal key is split into.</summary>
    public int NewShares { get; } = newShares;

    /// <summary>How many of the new shares unseal.</summary>
    public int NewThreshold { get; } = newThreshold;

    /// <summary>Current shares collected (deduplicated, wiped on reset).</summary>
    public UnsealProgress Shares { get; } = new();
}
