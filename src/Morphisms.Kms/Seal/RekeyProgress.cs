namespace Morphisms.Kms.Seal;

/// <summary>
/// One rekey attempt (<c>sys/rekey/init</c>): the new share layout and the current unseal shares collected so
/// far, in memory only. The nonce binds every <c>sys/rekey/update</c> to this attempt, so a share holder cannot
/// be tricked into feeding a different one.
/// </summary>
internal sealed class RekeyProgress(UnsealedState state, int newShares, int newThreshold, bool requireVerification, string? nonce = null)
{
    /// <summary>
    /// The unsealed state the attempt was started or loaded under. The attempt ends once another state is served (a
    /// seal, a restore, an HA step-down or promotion): meanwhile another node may have rekeyed or stored its own
    /// pending rekey, or a restore replaced the store, and this attempt would hide or overwrite what is stored now.
    /// </summary>
    public UnsealedState State { get; } = state;

    /// <summary>The attempt's nonce.</summary>
    public string Nonce { get; } = nonce ?? Guid.NewGuid().ToString();

    /// <summary>How many shares the new unseal key is split into.</summary>
    public int NewShares { get; } = newShares;

    /// <summary>How many of the new shares unseal.</summary>
    public int NewThreshold { get; } = newThreshold;

    /// <summary>Whether a threshold of the new shares must come back (<c>sys/rekey/verify</c>) before they replace the current ones.</summary>
    public bool RequireVerification { get; } = requireVerification;

    /// <summary>Current shares collected (deduplicated, wiped on reset).</summary>
    public UnsealProgress Shares { get; } = new();

    /// <summary>Set once the new shares were handed out and the attempt waits for them to be verified; else null.</summary>
    public RekeyVerification? Verification { get; private set; }

    /// <summary>An attempt whose new shares were handed out: it waits for them (a stored <see cref="PendingRekey"/> reloaded after a seal or restart).</summary>
    public static RekeyProgress Verifying(PendingRekey pending, UnsealedState state)
    {
        var attempt = new RekeyProgress(state, pending.SecretShares, pending.SecretThreshold, requireVerification: true, pending.Nonce);
        attempt.BeginVerification();
        return attempt;
    }

    /// <summary>Moves the attempt to its verification phase.</summary>
    public void BeginVerification() => Verification = new RekeyVerification();

    /// <summary>Zeroes every share collected, current and new.</summary>
    public void Wipe()
    {
        Shares.Reset();
        Verification?.Shares.Reset();
    }
}

/// <summary>
/// The verification phase of a rekey (<c>sys/rekey/verify</c>): the new shares collected so far, in memory only,
/// bound to their own nonce so a verification restarted with DELETE cannot be fed shares meant for the last one.
/// </summary>
internal sealed class RekeyVerification
{
    /// <summary>The verification's nonce (Vault's <c>verification_nonce</c>).</summary>
    public string Nonce { get; private set; } = Guid.NewGuid().ToString();

    /// <summary>New shares collected (deduplicated, wiped on reset).</summary>
    public UnsealProgress Shares { get; } = new();

    /// <summary>Forgets the new shares collected and starts over with a fresh nonce.</summary>
    public void Restart()
    {
        Shares.Reset();
        Nonce = Guid.NewGuid().ToString();
    }
}

/// <summary>What a completed <c>sys/rekey/update</c> returns, once.</summary>
/// <param name="Keys">The new unseal key shares.</param>
/// <param name="Nonce">The rekey attempt's nonce.</param>
/// <param name="VerificationNonce">With <c>require_verification</c>, the nonce for <c>sys/rekey/verify</c>; else null (the new shares are in force).</param>
internal sealed record RekeyResult(IReadOnlyList<byte[]> Keys, string Nonce, string? VerificationNonce);
