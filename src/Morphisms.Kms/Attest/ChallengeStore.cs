using System.Security.Cryptography;
using Morphisms.Kms.Http;

namespace Morphisms.Kms.Attest;

/// <summary>
/// Challenge nonces of <c>auth/attest</c>: 32 random bytes, single use, bound to one function, expiring after a
/// TTL. Kept in memory only: a restart forgets them, which costs an agent one retry and never lets a nonce be used
/// twice.
/// </summary>
/// <remarks>
/// The cap applies to nonces issued and not yet spent, so unauthenticated callers cannot grow memory without bound,
/// while a spent nonce frees its slot at once: the sustainable login rate is not tied to cap ÷ TTL. Spent nonces are
/// remembered separately (up to four times the cap, oldest forgotten first) only so that a replay is reported as
/// such; one forgotten early is reported as unknown, which is refused all the same. Every nonce has the same TTL, so
/// issue order is expiry order and purging walks a queue from its head instead of scanning.
/// </remarks>
internal sealed class ChallengeStore(TimeProvider time, TimeSpan ttl, int capacity)
{
    private readonly Lock _lock = new();
    private readonly Dictionary<string, Challenge> _pending = new(StringComparer.Ordinal);
    private readonly Queue<(string Key, DateTimeOffset ExpiresAt)> _pendingOrder = new();
    private readonly Dictionary<string, DateTimeOffset> _spent = new(StringComparer.Ordinal);
    private readonly Queue<(string Key, DateTimeOffset ExpiresAt)> _spentOrder = new();

    /// <summary>Nonces issued and neither spent nor expired: the figure the cap applies to.</summary>
    public int Outstanding
    {
        get
        {
            lock (_lock)
            {
                Purge(time.GetUtcNow());
                return _pending.Count;
            }
        }
    }

    /// <summary>Issues a nonce for <paramref name="function"/>.</summary>
    /// <exception cref="KmsException">429 when the capacity is reached by unspent, unexpired nonces.</exception>
    public (byte[] Nonce, DateTimeOffset ExpiresAt) Issue(string function)
    {
        var now = time.GetUtcNow();
        var nonce = RandomNumberGenerator.GetBytes(32);
        var key = Convert.ToBase64String(nonce);
        var expires = now + ttl;
        lock (_lock)
        {
            Purge(now);
            if (_pending.Count >= capacity)
            {
                throw new KmsException(429, "too many outstanding attestation challenges: try again once some have expired");
            }

            _pending[key] = new Challenge(function, expires);
            _pendingOrder.Enqueue((key, expires));
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
            if (_pending.Remove(key, out var challenge))
            {
                if (challenge.ExpiresAt <= now)
                {
                    return NonceCheck.Expired;
                }

                RememberSpent(key, challenge.ExpiresAt);
                return challenge.Function == function ? NonceCheck.Valid : NonceCheck.OtherFunction;
            }

            return _spent.TryGetValue(key, out var expiresAt) && expiresAt > now ? NonceCheck.AlreadyUsed : NonceCheck.Unknown;
        }
    }

    private void RememberSpent(string key, DateTimeOffset expiresAt)
    {
        _spent[key] = expiresAt;
        _spentOrder.Enqueue((key, expiresAt));
        while (_spentOrder.Count > capacity * 4L)
        {
            _spent.Remove(_spentOrder.Dequeue().Key);
        }
    }

    private void Purge(DateTimeOffset now)
    {
        // A queue entry whose nonce was spent meanwhile is skipped: the dictionaries are the truth, the queues only
        // say what to look at next.
        while (_pendingOrder.TryPeek(out var head) && head.ExpiresAt <= now)
        {
            _pendingOrder.Dequeue();
            _pending.Remove(head.Key);
        }

        if (_pendingOrder.Count > 2 * Math.Max(_pending.Count, capacity))
        {
            // Spent nonces leave their queue entries behind; when they dominate, rebuild from the dictionary.
            var live = _pendingOrder.Where(e => _pending.ContainsKey(e.Key)).ToList();
            _pendingOrder.Clear();
            foreach (var entry in live)
            {
                _pendingOrder.Enqueue(entry);
            }
        }

        while (_spentOrder.TryPeek(out var head) && head.ExpiresAt <= now)
        {
            _spentOrder.Dequeue();
            _spent.Remove(head.Key);
        }
    }

    private sealed record Challenge(string Function, DateTimeOffset ExpiresAt);
}

/// <summary>The outcome of spending a nonce.</summary>
internal enum NonceCheck
{
    /// <summary>Issued for this function, unexpired, unused: now used.</summary>
    Valid,

    /// <summary>Never issued by this KMS process, or expired and purged, or spent so long ago it was forgotten.</summary>
    Unknown,

    /// <summary>Past its expiry.</summary>
    Expired,

    /// <summary>Spent by an earlier login.</summary>
    AlreadyUsed,

    /// <summary>Issued for another function (now spent).</summary>
    OtherFunction,
}
