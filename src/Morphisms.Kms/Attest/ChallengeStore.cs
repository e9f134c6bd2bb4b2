using System.Buffers.Binary;
using System.Security.Cryptography;
using System.Text;

namespace Morphisms.Kms.Attest;

/// <summary>
/// Challenge nonces of <c>auth/attest</c>: single use, bound to one function, expiring after a TTL. Issuing one keeps
/// no state: the nonce authenticates itself under keys that exist only in this process's memory, so unauthenticated
/// callers can ask for as many as they like without crowding out anyone else's. Only spending one is remembered.
/// </summary>
/// <remarks>
/// <para>
/// Wire format, 56 bytes (base64 in JSON): <c>random (16) ‖ expiry (8) ‖ function tag (16) ‖ issuer tag (16)</c>,
/// where expiry is big-endian 100 ns ticks of this process's monotonic clock (a wall-clock step can neither revive a
/// spent nonce nor expire one early), function tag = HMAC-SHA256(function key, random ‖ expiry ‖ UTF-8 function
/// name) and issuer tag = HMAC-SHA256(issuer key, random ‖ expiry ‖ function tag), both cut to 128 bits. The issuer
/// tag covers everything before it, so a changed bit anywhere makes the nonce unknown; the separate function tag is
/// what lets a genuine nonce presented for another function be told apart from a forgery. Both keys are random at
/// start: a restart, or another KMS node, does not know this process's nonces (in HA only the active node serves
/// <c>auth/attest</c>; standbys redirect both requests to it).
/// </para>
/// <para>
/// Spent nonces are remembered until their expiry (after which they are refused as expired anyway), at most
/// <c>maxSpent</c> of them. A nonce is spent only by an accepted login, so the set grows only through logins that a
/// genuine TEE running a registered function's measured code made — and even those would need <c>maxSpent</c> ÷ TTL a
/// second to keep it full (with the defaults 200,000 ÷ 60 s ≈ 3,300 a second, sustained). An entry costs about 90 bytes (about 130 with the collections' growth slack, which stays
/// allocated after a peak): 18–26 MB at the default cap, measured. When the set is full a login is answered 429
/// before anything is judged and its nonce stays unspent, so the agent's retry of the same request succeeds once
/// older entries expire; forgetting an unexpired entry instead would let its nonce be replayed.
/// </para>
/// </remarks>
internal sealed class ChallengeStore
{
    /// <summary>The length of a nonce on the wire.</summary>
    public const int NonceBytes = RandomBytes + ExpiryBytes + 2 * TagBytes;

    private const int RandomBytes = 16;
    private const int ExpiryBytes = 8;
    private const int TagBytes = 16;
    private const int FunctionTagAt = RandomBytes + ExpiryBytes;
    private const int IssuerTagAt = FunctionTagAt + TagBytes;

    private readonly TimeProvider _time;
    private readonly TimeSpan _ttl;
    private readonly int _maxSpent;
    private readonly long _started;
    private readonly byte[] _functionKey = RandomNumberGenerator.GetBytes(32);
    private readonly byte[] _issuerKey = RandomNumberGenerator.GetBytes(32);
    private readonly Lock _lock = new();
    private readonly Dictionary<UInt128, long> _spent = [];
    private readonly PriorityQueue<UInt128, long> _spentByExpiry = new();

    /// <summary>Creates a store with fresh keys: nonces of any other instance are unknown to it.</summary>
    public ChallengeStore(TimeProvider time, TimeSpan ttl, int maxSpent)
    {
        _time = time;
        _ttl = ttl;
        _maxSpent = maxSpent;
        _started = time.GetTimestamp();
    }

    /// <summary>Spent nonces remembered (spent and not yet expired): the figure the cap applies to.</summary>
    public int Spent
    {
        get
        {
            lock (_lock)
            {
                Purge(Now());
                return _spent.Count;
            }
        }
    }

    /// <summary>Issues a nonce for <paramref name="function"/>; nothing is stored.</summary>
    public (byte[] Nonce, DateTimeOffset ExpiresAt) Issue(string function)
    {
        var nonce = new byte[NonceBytes];
        RandomNumberGenerator.Fill(nonce.AsSpan(0, RandomBytes));
        BinaryPrimitives.WriteInt64BigEndian(nonce.AsSpan(RandomBytes, ExpiryBytes), Now() + _ttl.Ticks);
        FunctionTag(nonce, function).CopyTo(nonce, FunctionTagAt);
        IssuerTag(nonce).CopyTo(nonce, IssuerTagAt);
        return (nonce, _time.GetUtcNow() + _ttl);
    }

    /// <summary>
    /// Judges a nonce without spending it: forged or altered (unknown), expired, already spent, or issued for another
    /// function. A login spends its nonce only once its evidence was accepted (<see cref="Spend"/>), so the spent set
    /// grows only through logins that a genuine TEE running a registered function made: refused attempts, forged
    /// evidence included, cannot fill it and lock real instances out.
    /// </summary>
    public NonceCheck Check(byte[] nonce, string function)
    {
        lock (_lock)
        {
            if (Unspent(nonce) is var unspent && unspent != NonceCheck.Valid)
            {
                return unspent;
            }
        }

        return CryptographicOperations.FixedTimeEquals(FunctionTag(nonce, function), nonce.AsSpan(FunctionTagAt, TagBytes))
            ? NonceCheck.Valid
            : NonceCheck.OtherFunction;
    }

    /// <summary>
    /// Spends a nonce that <see cref="Check"/> found valid, for an accepted login: <see cref="NonceCheck.Valid"/> the
    /// first time, <see cref="NonceCheck.AlreadyUsed"/> when a concurrent login with the same nonce spent it first,
    /// <see cref="NonceCheck.Expired"/> when it expired meanwhile, and <see cref="NonceCheck.Busy"/> (nothing spent:
    /// the login may be retried) when the spent set is full.
    /// </summary>
    public NonceCheck Spend(byte[] nonce)
    {
        lock (_lock)
        {
            if (Unspent(nonce) is var unspent && unspent != NonceCheck.Valid)
            {
                return unspent;
            }

            if (_spent.Count >= _maxSpent)
            {
                return NonceCheck.Busy;
            }

            var id = IdOf(nonce);
            var expiry = ExpiryOf(nonce);
            _spent.Add(id, expiry);
            _spentByExpiry.Enqueue(id, expiry);
        }

        return NonceCheck.Valid;
    }

    // What Check and Spend both ask first (under the lock): issued here and unaltered, unexpired, not yet spent.
    private NonceCheck Unspent(byte[] nonce)
    {
        if (nonce.Length != NonceBytes || !CryptographicOperations.FixedTimeEquals(IssuerTag(nonce), nonce.AsSpan(IssuerTagAt)))
        {
            return NonceCheck.Unknown;
        }

        var now = Now();
        if (ExpiryOf(nonce) <= now)
        {
            return NonceCheck.Expired;
        }

        Purge(now);
        return _spent.ContainsKey(IdOf(nonce)) ? NonceCheck.AlreadyUsed : NonceCheck.Valid;
    }

    private static long ExpiryOf(byte[] nonce) => BinaryPrimitives.ReadInt64BigEndian(nonce.AsSpan(RandomBytes, ExpiryBytes));

    private static UInt128 IdOf(byte[] nonce) => BinaryPrimitives.ReadUInt128BigEndian(nonce.AsSpan(0, RandomBytes));

    /// <summary>Ticks since this store was created, on the monotonic clock.</summary>
    private long Now() => _time.GetElapsedTime(_started).Ticks;

    private byte[] FunctionTag(byte[] nonce, string function) =>
        Tag(_functionKey, [.. nonce.AsSpan(0, FunctionTagAt), .. Encoding.UTF8.GetBytes(function)]);

    private byte[] IssuerTag(byte[] nonce) => Tag(_issuerKey, nonce.AsSpan(0, IssuerTagAt));

    private static byte[] Tag(byte[] key, ReadOnlySpan<byte> data) => HMACSHA256.HashData(key, data)[..TagBytes];

    private void Purge(long now)
    {
        while (_spentByExpiry.TryPeek(out var id, out var expiry) && expiry <= now)
        {
            _spentByExpiry.Dequeue();
            _spent.Remove(id);
        }
    }
}

/// <summary>The outcome of spending a nonce.</summary>
internal enum NonceCheck
{
    /// <summary>Issued for this function, unexpired, unused: now used.</summary>
    Valid,

    /// <summary>Not issued by this KMS process (another node, an earlier run, a forgery), or altered.</summary>
    Unknown,

    /// <summary>Past its expiry.</summary>
    Expired,

    /// <summary>Spent by an earlier login.</summary>
    AlreadyUsed,

    /// <summary>Issued for another function (now spent).</summary>
    OtherFunction,

    /// <summary>Genuine and unused, but the spent set is full: not spent; the login may be retried.</summary>
    Busy,
}
