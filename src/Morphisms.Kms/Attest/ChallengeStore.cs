using System.Security.Cryptography;
using Morphisms.Kms.Http;

namespace Morphisms.Kms.Attest;

/// <summary>
/// Challenge nonces of <c>auth/attest</c>: 32 random bytes, single use, bound to one function, expiring after a
/// TTL. Kept in memory only: a restart forgets them, which costs an agent one retry and never lets a nonce be used
/// twice. Used nonces stay until they expire so a replay is reported as such. The number held is capped, so
/// unauthenticated callers cannot grow memory without bound.
/// </summary>
internal sealed class ChallengeStore(TimeProvider time, TimeSpan ttl, int capacity)
{
    private readonly Lock _lock = new();
    private readonly Dictionary<string, Challenge> _challenges = new(StringComparer.Ordinal);

    /// <summary>Nonces currently held (issued or used, not yet purged).</summary>
    public int Outstanding
    {
        get
        {
            lock (_lock)
            {
                return _challenges.Count;
            }
        }
    }

    /// <summary>Issues a nonce for <paramref name="function"/>.</summary>
    /// <exception cref="KmsException">429 when the capacity is reached by unexpired nonces.</exception>
    public (byte[] Nonce, DateTimeOffset ExpiresAt) Issue(string function)
    {
        var now = time.GetUtcNow();
        var nonce = RandomNumberGenerator.GetBytes(32);
        var expires = now + ttl;
        lock (_lock)
        {
            if (_challenges.Count >= capacity)
            {
                Purge(now);
            }

            if (_challenges.Count >= capacity)
            {
                throw new KmsException(429, "too many outstanding attestation challenges: try again once some have expired");
            }

            _challenges[Convert.ToBase64String(nonce)] = new Challenge(function, expires, Used: false);
        }

        return (nonce, expires);
    }

    /// <summary>
    /// Spends a nonce. Whatever the outcome, the nonce cannot succeed afterwards: a failed login must not leave a
    /// nonce that a second attempt (with other evidence) could use.
    /// </summary>
    public NonceCheck Consume(byte[] nonce, string function)
    {
        var key = Convert.ToBase64String(nonce);
        var now = time.GetUtcNow();
        lock (_lock)
        {
            if (!_challenges.TryGetValue(key, out var challenge))
            {
                return NonceCheck.Unknown;
            }

            if (challenge.ExpiresAt <= now)
            {
                _challenges.Remove(key);
                return NonceCheck.Expired;
            }

            if (challenge.Used)
            {
                return NonceCheck.AlreadyUsed;
            }

            _challenges[key] = challenge with { Used = true };
            return challenge.Function == function ? NonceCheck.Valid : NonceCheck.OtherFunction;
        }
    }

    private void Purge(DateTimeOffset now)
    {
        foreach (var (key, challenge) in _challenges.ToList())
        {
            if (challenge.ExpiresAt <= now)
            {
                _challenges.Remove(key);
            }
        }
    }

    private sealed record Challenge(string Function, DateTimeOffset ExpiresAt, bool Used);
}

/// <summary>The outcome of spending a nonce.</summary>
internal enum NonceCheck
{
    /// <summary>Issued for this function, unexpired, unused: now used.</summary>
    Valid,

    /// <summary>Never issued by this KMS process, or expired and purged.</summary>
    Unknown,

    /// <summary>Past its expiry.</summary>
    Expired,

    /// <summary>Spent by an earlier login.</summary>
    AlreadyUsed,

    /// <summary>Issued for another function (now spent).</summary>
    OtherFunction,
}
