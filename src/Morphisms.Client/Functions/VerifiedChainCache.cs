using System.Collections.Concurrent;
using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;

namespace Morphisms.Client.Functions;

/// <summary>
/// Certificate chains already built to a pinned KMS root, remembered so that a client opening many connections to
/// the same instance (a burst of callers, a pool refilling) checks the chain's signatures once, not per handshake —
/// as browsers' certificate-verifier caches do. The build is the dear part of a function handshake: the KMS root is
/// P-384, and OpenSSL 3.0 has no fast P-384, so each build costs ~1.5 ms of CPU.
/// </summary>
/// <remarks>
/// An entry stands for one exact input: the bytes of the pinned root, the leaf and every certificate the server
/// presented, in order. Building that input under the validator's policy (the pinned root as the only anchor) gives the
/// same result at any time inside the validity of every certificate in the chain, so a hit also requires the time
/// of use to fall inside that window. Only successful builds are stored; the per-connection checks (host, attested
/// identity, measurement, revocation) are never cached: an entry also remembers which certificate of its input issued
/// the leaf, so that the revocation check (<see cref="FunctionCrlCache"/>) runs on a hit as on a build. Shared by every
/// handler of a process unless one is given its own.
/// </remarks>
public sealed class VerifiedChainCache
{
    private readonly ConcurrentDictionary<string, Validity> _entries = new(StringComparer.Ordinal);
    private readonly int _capacity;
    private long _hits;
    private long _misses;

    /// <summary>Creates a cache keeping at most <paramref name="capacity"/> chains.</summary>
    public VerifiedChainCache(int capacity = 1024)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(capacity, 1);
        _capacity = capacity;
    }

    /// <summary>The process-wide cache <see cref="FunctionHttpHandler"/> uses by default.</summary>
    public static VerifiedChainCache Shared { get; } = new();

    /// <summary>Lookups answered from the cache.</summary>
    public long Hits => Interlocked.Read(ref _hits);

    /// <summary>Lookups that found no usable entry (the chain was then built).</summary>
    public long Misses => Interlocked.Read(ref _misses);

    /// <summary>Chains held.</summary>
    public int Count => _entries.Count;

    /// <summary>The key of one exact input: a SHA-256 over the length-prefixed bytes of each certificate.</summary>
    internal static string KeyOf(X509Certificate2 pinnedRoot, X509Certificate2 leaf, IReadOnlyList<X509Certificate2> presented)
    {
        using var hash = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
        Append(hash, pinnedRoot.RawData);
        Append(hash, leaf.RawData);
        foreach (var certificate in presented)
        {
            Append(hash, certificate.RawData);
        }

        return Convert.ToHexString(hash.GetHashAndReset());
    }

    private static void Append(IncrementalHash hash, byte[] der)
    {
        Span<byte> length = stackalloc byte[4];
        System.Buffers.Binary.BinaryPrimitives.WriteInt32BigEndian(length, der.Length);
        hash.AppendData(length);
        hash.AppendData(der);
    }

    /// <summary>
    /// True when the chain with this key was built before and <paramref name="now"/> is inside its validity;
    /// <paramref name="issuer"/> is then where the leaf's issuing CA is in that input (see <see cref="Add"/>).
    /// </summary>
    internal bool TryHit(string key, DateTimeOffset now, out int issuer)
    {
        if (_entries.TryGetValue(key, out var validity) && validity.Contains(now))
        {
            Interlocked.Increment(ref _hits);
            issuer = validity.Issuer;
            return true;
        }

        Interlocked.Increment(ref _misses);
        issuer = 0;
        return false;
    }

    /// <summary>
    /// Remembers a chain that was just built to the pinned root, whose leaf was issued by the presented certificate at
    /// index <paramref name="issuer"/>, or by the pinned root when it is -1.
    /// </summary>
    internal void Add(string key, X509Chain built, DateTimeOffset now, int issuer)
    {
        var notBefore = DateTimeOffset.MinValue;
        var notAfter = DateTimeOffset.MaxValue;
        foreach (var element in built.ChainElements)
        {
            // X509Certificate2 reports local times; compare instants.
            var from = new DateTimeOffset(element.Certificate.NotBefore);
            var until = new DateTimeOffset(element.Certificate.NotAfter);
            notBefore = from > notBefore ? from : notBefore;
            notAfter = until < notAfter ? until : notAfter;
        }

        if (_entries.Count >= _capacity)
        {
            Trim(now);
        }

        _entries[key] = new Validity(notBefore, notAfter, issuer);
    }

    // Expired chains go first; if the cache is still full (a client talking to more live instances than it holds),
    // it starts over: a miss costs one build, and a bounded cache matters more than keeping every entry.
    private void Trim(DateTimeOffset now)
    {
        foreach (var (key, validity) in _entries)
        {
            if (validity.NotAfter < now)
            {
                _entries.TryRemove(key, out _);
            }
        }

        if (_entries.Count >= _capacity)
        {
            _entries.Clear();
        }
    }

    private readonly record struct Validity(DateTimeOffset NotBefore, DateTimeOffset NotAfter, int Issuer)
    {
        public bool Contains(DateTimeOffset now) => now >= NotBefore && now <= NotAfter;
    }
}
