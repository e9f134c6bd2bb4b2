using System.Collections.Concurrent;
using System.Security.Cryptography.X509Certificates;
using Morphisms.Attestation.Abi.Snp;

namespace Morphisms.Attestation.Verify.Snp;

/// <summary>
/// Caches another <see cref="ISnpCertificateSource"/>. A VCEK for a given chip and TCB never
/// changes, so it is kept for as long as there is room; certificate chains are kept for
/// <see cref="ChainLifetime"/>; a CRL until its next update (or <see cref="CrlLifetime"/> when it has none).
/// Concurrent requests for the same item share one fetch; failures are not cached.
/// </summary>
public sealed class CachingSnpCertificateSource : ISnpCertificateSource
{
    private readonly ISnpCertificateSource _inner;
    private readonly TimeProvider _time;
    private readonly int _maxVceks;
    private readonly ConcurrentDictionary<string, Lazy<Task<X509Certificate2>>> _vceks = new();
    private readonly ConcurrentDictionary<string, Expiring<IReadOnlyList<X509Certificate2>>> _chains = new();
    private readonly ConcurrentDictionary<string, Expiring<CertificateRevocationList>> _crls = new();

    /// <summary>Wraps <paramref name="inner"/>; time comes from <paramref name="time"/> (the system clock by default).</summary>
    public CachingSnpCertificateSource(ISnpCertificateSource inner, TimeProvider? time = null, int maxVceks = 1024)
    {
        _inner = inner;
        _time = time ?? TimeProvider.System;
        _maxVceks = maxVceks;
    }

    /// <summary>How long a fetched certificate chain is reused.</summary>
    public TimeSpan ChainLifetime { get; init; } = TimeSpan.FromDays(1);

    /// <summary>How long a CRL without a next-update time is reused.</summary>
    public TimeSpan CrlLifetime { get; init; } = TimeSpan.FromHours(12);

    /// <inheritdoc />
    public async Task<X509Certificate2> GetVcekAsync(string product, ReadOnlyMemory<byte> chipId, TcbVersion reportedTcb, CancellationToken cancellationToken = default)
    {
        var key = $"{product.ToLowerInvariant()}/{Convert.ToHexStringLower(chipId.Span)}/{reportedTcb.Raw:x16}/{reportedTcb.Layout}";
        if (!_vceks.ContainsKey(key) && _vceks.Count >= _maxVceks)
        {
            _vceks.Clear();
        }

        var copy = chipId.ToArray();
        var entry = _vceks.GetOrAdd(key, _ => new Lazy<Task<X509Certificate2>>(() => _inner.GetVcekAsync(product, copy, reportedTcb, CancellationToken.None)));
        try
        {
            return await entry.Value.WaitAsync(cancellationToken).ConfigureAwait(false);
        }
        catch (Exception) when (entry.Value.IsFaulted || entry.Value.IsCanceled)
        {
            _vceks.TryRemove(new KeyValuePair<string, Lazy<Task<X509Certificate2>>>(key, entry));
            throw;
        }
    }

    /// <inheritdoc />
    public Task<IReadOnlyList<X509Certificate2>> GetCertificateChainAsync(string product, SnpSigningKey signer, CancellationToken cancellationToken = default) =>
        GetExpiringAsync(_chains, $"{product.ToLowerInvariant()}/{signer}", () => _inner.GetCertificateChainAsync(product, signer, CancellationToken.None),
            _ => _time.GetUtcNow() + ChainLifetime, cancellationToken);

    /// <inheritdoc />
    public Task<CertificateRevocationList> GetCrlAsync(string product, SnpSigningKey signer, CancellationToken cancellationToken = default) =>
        GetExpiringAsync(_crls, $"{product.ToLowerInvariant()}/{signer}", () => _inner.GetCrlAsync(product, signer, CancellationToken.None),
            crl => crl.NextUpdate ?? _time.GetUtcNow() + CrlLifetime, cancellationToken);

    private async Task<T> GetExpiringAsync<T>(ConcurrentDictionary<string, Expiring<T>> cache, string key, Func<Task<T>> fetch, Func<T, DateTimeOffset> expiry, CancellationToken cancellationToken)
    {
        // At most one refetch: a freshly fetched item is returned even if already stale (an old CRL
        // from the KDS), so the verifier can say so instead of this loop asking forever.
        for (var attempt = 0; ; attempt++)
        {
            var entry = cache.GetOrAdd(key, _ => new Expiring<T>(fetch));
            T value;
            try
            {
                value = await entry.Task.WaitAsync(cancellationToken).ConfigureAwait(false);
            }
            catch (Exception) when (entry.Task.IsFaulted || entry.Task.IsCanceled)
            {
                cache.TryRemove(new KeyValuePair<string, Expiring<T>>(key, entry));
                throw;
            }

            entry.ExpiresAt ??= expiry(value);
            if (attempt > 0 || _time.GetUtcNow() < entry.ExpiresAt)
            {
                return value;
            }

            cache.TryRemove(new KeyValuePair<string, Expiring<T>>(key, entry));
        }
    }

    private sealed class Expiring<T>(Func<Task<T>> fetch)
    {
        private readonly Lazy<Task<T>> _task = new(fetch);

        public Task<T> Task => _task.Value;

        public DateTimeOffset? ExpiresAt { get; set; }
    }
}
