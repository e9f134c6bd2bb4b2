using System.Collections.Concurrent;

namespace Morphisms.Attestation.Collateral;

/// <summary>
/// Caches another collateral source's answers per (TEE, FMSPC, PCK CA). An entry lives until the
/// earliest nextUpdate of the TCB info, QE identity and CRLs in it, and never longer than
/// <see cref="CachingCollateralOptions.MaxAge"/>. Collateral that is already past its nextUpdate when
/// fetched is returned but not cached, so the next request asks again. Errors are never cached.
/// At most <see cref="CachingCollateralOptions.MaxEntries"/> entries are kept: each store drops the
/// expired ones, and when still full, the oldest stored.
/// </summary>
public sealed class CachingCollateralSource : ICollateralSource
{
    private readonly ICollateralSource _inner;
    private readonly TimeProvider _time;
    private readonly CachingCollateralOptions _options;
    private readonly ConcurrentDictionary<(TeeType Tee, string Fmspc, PckCaType Ca), Entry> _entries = new();
    private readonly Lock _store = new();
    private long _stored;

    /// <summary>Wraps <paramref name="inner"/>; <paramref name="time"/> decides expiry (tests pass a fake clock).</summary>
    public CachingCollateralSource(ICollateralSource inner, TimeProvider time, CachingCollateralOptions? options = null)
    {
        _inner = inner ?? throw new ArgumentNullException(nameof(inner));
        _time = time ?? throw new ArgumentNullException(nameof(time));
        _options = options ?? new CachingCollateralOptions();
        ArgumentOutOfRangeException.ThrowIfLessThan(_options.MaxEntries, 1, nameof(options));
    }

    /// <summary>How many entries are held (expired ones included until the next store drops them).</summary>
    internal int Count => _entries.Count;

    /// <inheritdoc />
    public async ValueTask<DcapCollateral?> GetDcapCollateralAsync(DcapCollateralRequest request, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(request);
        var key = (request.Tee, request.Fmspc.Trim().ToLowerInvariant(), request.CaType);
        var now = _time.GetUtcNow();
        if (_entries.TryGetValue(key, out var cached) && now < cached.Expires)
        {
            return cached.Collateral;
        }

        var fresh = await _inner.GetDcapCollateralAsync(request, cancellationToken).ConfigureAwait(false);
        var expires = fresh is null ? now + _options.MissingAge : ExpiryOf(fresh, now);
        lock (_store)
        {
            if (expires > now)
            {
                MakeRoomFor(key, now);
                _entries[key] = new Entry(fresh, expires, ++_stored);
            }
            else
            {
                _entries.TryRemove(key, out _);
            }
        }

        return fresh;
    }

    /// <summary>
    /// Drops expired entries, then, while still full, the oldest stored. Runs under the store lock after a
    /// fetch from the inner source, which costs far more than scanning at most <see cref="CachingCollateralOptions.MaxEntries"/> entries.
    /// </summary>
    private void MakeRoomFor((TeeType, string, PckCaType) key, DateTimeOffset now)
    {
        foreach (var (other, entry) in _entries)
        {
            if (now >= entry.Expires)
            {
                _entries.TryRemove(other, out _);
            }
        }

        while (!_entries.ContainsKey(key) && _entries.Count >= _options.MaxEntries)
        {
            var oldest = _entries.MinBy(e => e.Value.Sequence);
            _entries.TryRemove(oldest.Key, out _);
        }
    }

    private DateTimeOffset ExpiryOf(DcapCollateral collateral, DateTimeOffset now)
    {
        var expires = now + _options.MaxAge;
        foreach (var next in NextUpdates(collateral))
        {
            if (next < expires)
            {
                expires = next;
            }
        }

        return expires;
    }

    /// <summary>
    /// Unreadable items contribute no date: they will fail verification with a clear reason, and the
    /// <see cref="CachingCollateralOptions.MaxAge"/> bound still refreshes them.
    /// </summary>
    private static IEnumerable<DateTimeOffset> NextUpdates(DcapCollateral collateral)
    {
        var dates = new List<DateTimeOffset>();
        TryAdd(dates, () => collateral.TcbInfo is { } t ? TcbInfo.Parse(t.Body).NextUpdate : null);
        TryAdd(dates, () => collateral.QeIdentity is { } q ? EnclaveIdentity.Parse(q.Body).NextUpdate : null);
        TryAdd(dates, () => collateral.PckCrl is { } p ? Verify.CertificateRevocationList.Parse(p).NextUpdate : null);
        TryAdd(dates, () => collateral.RootCaCrl is { } r ? Verify.CertificateRevocationList.Parse(r).NextUpdate : null);
        return dates;
    }

    private static void TryAdd(List<DateTimeOffset> dates, Func<DateTimeOffset?> read)
    {
        try
        {
            if (read() is { } date)
            {
                dates.Add(date);
            }
        }
        catch (EvidenceFormatException)
        {
        }
    }

    private sealed record Entry(DcapCollateral? Collateral, DateTimeOffset Expires, long Sequence);
}
