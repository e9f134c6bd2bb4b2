using System.Collections.Concurrent;
using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;
using Morphisms.Attestation;
using Morphisms.Attestation.Verify;

namespace Morphisms.Client.Functions;

/// <summary>
/// CRLs of the CAs that issue function certificates, fetched from the KMS and kept per issuing CA (keyed by the SHA-256
/// of its SubjectPublicKeyInfo), so that a revocation check costs a set lookup on all but one handshake per
/// <see cref="FunctionRevocationOptions.CrlMaxAge"/>. A CRL is kept only after its issuer name and signature were checked
/// against the issuing CA of a chain already verified to the pinned KMS root, and only while it is younger than the
/// max age and before its <c>nextUpdate</c>. One fetch runs at a time per CA, asynchronously: handshakes that need the same
/// CRL meanwhile (a burst of connections) wait for that fetch, at most <see cref="FunctionRevocationOptions.FetchTimeout"/>,
/// and share its outcome, success or failure. A CRL past half the max age is refreshed in the background while it still
/// answers, so only the first handshake per CA (or one after a pause longer than the max age) waits for the KMS — unless
/// <see cref="WarmAsync"/> fetched the default issuer's CRL before the connection, where waiting holds no thread: a
/// handshake that finds no CRL of its CA uses that one when it passes the same checks as a fetched one.
/// </summary>
public sealed class FunctionCrlCache
{
    private readonly ConcurrentDictionary<string, Slot> _slots = new(StringComparer.Ordinal);

    // Per source (one per handler, unless a test shares one): the default issuer's CRL fetched ahead of handshakes.
    // Keyed by the source's name (the KMS's address), not the source object: every FunctionHttpHandler.Create makes a
    // source of its own, and a client that makes a handler per call must not fetch a CRL before every connection. Sharing
    // is safe, as a prefetched CRL is used only once it verifies as the issuing CA's of the chain being checked.
    private readonly ConcurrentDictionary<string, Warmth> _warmth = new(StringComparer.Ordinal);
    private readonly int _capacity;
    private long _fetches;
    private int _waiting;

    /// <summary>Creates a cache holding the CRLs of at most <paramref name="capacity"/> issuing CAs.</summary>
    public FunctionCrlCache(int capacity = 64)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(capacity, 1);
        _capacity = capacity;
    }

    /// <summary>The process-wide cache <see cref="FunctionHttpHandler"/> uses by default.</summary>
    public static FunctionCrlCache Shared { get; } = new();

    /// <summary>CRL fetches started (successful or not).</summary>
    public long Fetches => Interlocked.Read(ref _fetches);

    /// <summary>Issuing CAs with a slot (a CRL, or a fetch under way).</summary>
    public int Count => _slots.Count;

    /// <summary>
    /// Handshakes blocked in <see cref="Check"/> on a fetch under way right now: lets a test release a held fetch only once
    /// every handshake of a burst waits on it, rather than after a guessed delay.
    /// </summary>
    internal int Waiting => Volatile.Read(ref _waiting);

    /// <summary>
    /// Why <paramref name="leaf"/> must be refused — it is listed, or no valid CRL of <paramref name="issuingCa"/> could be
    /// had from <paramref name="source"/> within <paramref name="fetchTimeout"/> — or null when a current CRL of that CA
    /// does not list it. Blocks while a fetch runs, at most <paramref name="fetchTimeout"/>: the TLS certificate callback
    /// this serves is synchronous. A CRL older than half <paramref name="maxAge"/> still answers, and a fetch of its
    /// successor starts in the background, so only a handshake that finds no CRL young enough waits.
    /// </summary>
    internal string? Check(X509Certificate2 leaf, X509Certificate2 issuingCa, DateTimeOffset now, TimeSpan maxAge, TimeSpan fetchTimeout, IFunctionCrlSource source)
    {
        var key = Convert.ToHexStringLower(SHA256.HashData(issuingCa.PublicKey.ExportSubjectPublicKeyInfo()));
        var slot = SlotFor(key, now, maxAge);
        Task<Outcome>? pending = null;
        TaskCompletionSource<Outcome>? fetch = null;
        string? verdict = null;
        lock (slot)
        {
            if (slot.Current is { } current && IsFresh(current, issuingCa, now, maxAge))
            {
                // Refresh ahead: past half the max age, one fetch per CA replaces the CRL in the background, so that under
                // a steady stream of handshakes none waits for the KMS; this one is answered from the CRL held.
                if (slot.InFlight is null && now - current.FetchedAt >= maxAge / 2)
                {
                    fetch = new TaskCompletionSource<Outcome>(TaskCreationOptions.RunContinuationsAsynchronously);
                    slot.InFlight = fetch.Task;
                }

                verdict = Verdict(current.Crl, leaf);
            }
            else if (slot.InFlight is { } inFlight)
            {
                pending = inFlight;
            }
            else if (Prefetched(source, issuingCa, now, maxAge) is { } warmed)
            {
                // Fetched before the connection (WarmAsync) and checked now as a fetched CRL is, against this issuing CA:
                // held as if this handshake had fetched it. A CRL of another CA (after a rotation) fails, and the fetch runs.
                slot.Current = warmed;
                verdict = Verdict(warmed.Crl, leaf);
            }
            else
            {
                fetch = new TaskCompletionSource<Outcome>(TaskCreationOptions.RunContinuationsAsynchronously);
                pending = slot.InFlight = fetch.Task;
            }
        }

        if (fetch is not null)
        {
            Start(fetch, slot, issuingCa, now, fetchTimeout, source);
        }

        if (pending is null)
        {
            return verdict;
        }

        // Bounded: a KMS that does not answer refuses the handshake after the fetch timeout instead of holding its thread
        // (and, through the thread pool, every other) for as long as the fetch hangs.
        bool landed;
        Interlocked.Increment(ref _waiting);
        try
        {
            landed = pending.Wait(fetchTimeout);
        }
        finally
        {
            Interlocked.Decrement(ref _waiting);
        }

        if (!landed)
        {
            // A fetch that outlived its time (a source deaf to its token) is let go, so the next handshake tries again.
            lock (slot)
            {
                if (slot.InFlight == pending)
                {
                    slot.InFlight = null;
                }
            }

            return $"revocation: no CRL for the issuing CA '{issuingCa.Subject}' came from {source.Name} within {fetchTimeout.TotalSeconds:0.#} s "
                + "(FunctionRevocationOptions.FetchTimeout); the certificate is refused, as its revocation cannot be checked";
        }

        var result = pending.Result;
        return result.Entry is { } fetched
            ? Verdict(fetched.Crl, leaf)
            : $"revocation: no valid CRL for the issuing CA '{issuingCa.Subject}' could be had from {source.Name}: {result.Failure}; "
                + "the certificate is refused, as its revocation cannot be checked";
    }

    /// <summary>
    /// Fetches the CRL of <paramref name="source"/>'s default issuer, unless one from it (or a CRL it served to a handshake)
    /// is younger than half <paramref name="maxAge"/>, so that the handshake of the connection about to open finds it. Meant
    /// to be awaited before connecting, where waiting holds no thread: a burst of first connections then waits here, for one
    /// fetch per source, instead of each blocking a thread-pool thread in its TLS callback (which can starve the fetch's own
    /// completions until every handshake is refused). Never fails: without a CRL from here, the handshake fetches its own
    /// and refuses as it would have. Waits at most <paramref name="fetchTimeout"/>.
    /// </summary>
    /// <exception cref="OperationCanceledException"><paramref name="cancellationToken"/> was cancelled (the connection was given up).</exception>
    internal async Task WarmAsync(IFunctionCrlSource source, DateTimeOffset now, TimeSpan maxAge, TimeSpan fetchTimeout, CancellationToken cancellationToken)
    {
        var warmth = WarmthFor(source);
        TaskCompletionSource? started = null;
        Task pending;
        lock (warmth)
        {
            if (Young(warmth.Prefetched?.FetchedAt) || Young(warmth.VerifiedAt))
            {
                return;
            }

            if (warmth.InFlight is null)
            {
                started = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
                warmth.InFlight = started.Task;
            }

            pending = warmth.InFlight;
        }

        bool Young(DateTimeOffset? at) => at is { } t && now >= t && now - t < maxAge / 2;

        if (started is not null)
        {
            Interlocked.Increment(ref _fetches);
            _ = PrefetchAsync(warmth, started, source, now, fetchTimeout);
        }

        try
        {
            await pending.WaitAsync(fetchTimeout, cancellationToken).ConfigureAwait(false);
        }
        catch (TimeoutException)
        {
            // A source deaf to its token: let go, so the next connection tries again; this one's handshake fetches itself.
            lock (warmth)
            {
                if (warmth.InFlight == pending)
                {
                    warmth.InFlight = null;
                }
            }
        }
    }

    private static async Task PrefetchAsync(Warmth warmth, TaskCompletionSource done, IFunctionCrlSource source, DateTimeOffset now, TimeSpan fetchTimeout)
    {
        CertificateRevocationList? crl = null;
        try
        {
            using var limit = new CancellationTokenSource(fetchTimeout);
            crl = CertificateRevocationList.Parse(await source.FetchDefaultAsync(limit.Token).ConfigureAwait(false));
        }
        catch (Exception e) when (e is CrlFetchException or OperationCanceledException or EvidenceFormatException)
        {
            // Not fatal: a handshake that finds no CRL fetches the one it needs itself, and refuses with the reason if that fails.
        }
        finally
        {
            lock (warmth)
            {
                if (crl is not null && (warmth.Prefetched is not { } held || held.FetchedAt <= now))
                {
                    warmth.Prefetched = new Entry(crl, now);
                }

                if (warmth.InFlight == done.Task)
                {
                    warmth.InFlight = null;
                }
            }

            done.SetResult();
        }
    }

    /// <summary>The CRL prefetched from <paramref name="source"/>, if it is younger than <paramref name="maxAge"/> and stands for <paramref name="issuingCa"/> now.</summary>
    private Entry? Prefetched(IFunctionCrlSource source, X509Certificate2 issuingCa, DateTimeOffset now, TimeSpan maxAge)
    {
        if (!_warmth.TryGetValue(source.Name, out var warmth))
        {
            return null;
        }

        Entry? entry;
        lock (warmth)
        {
            entry = warmth.Prefetched;
        }

        return entry is not null && now >= entry.FetchedAt && now - entry.FetchedAt < maxAge && Problem(entry.Crl, issuingCa, now) is null ? entry : null;
    }

    /// <summary>Runs the fetch <paramref name="fetch"/> stands for, without a thread of its own while the KMS answers.</summary>
    private void Start(TaskCompletionSource<Outcome> fetch, Slot slot, X509Certificate2 issuingCa, DateTimeOffset now, TimeSpan fetchTimeout, IFunctionCrlSource source)
    {
        Interlocked.Increment(ref _fetches);
        _ = RunAsync();

        async Task RunAsync()
        {
            var outcome = new Outcome(null, "the fetch ended unexpectedly");
            try
            {
                outcome = await FetchAsync(issuingCa, now, fetchTimeout, source).ConfigureAwait(false);
            }
            finally
            {
                // Whatever happened, the handshakes waiting on this fetch must be released with its outcome.
                lock (slot)
                {
                    if (outcome.Entry is { } entry && (slot.Current is not { } held || held.FetchedAt <= entry.FetchedAt))
                    {
                        slot.Current = entry;
                    }

                    // The source serves current CRLs: the next connection through it need not warm the cache first.
                    if (outcome.Entry is not null)
                    {
                        var warmth = WarmthFor(source);
                        lock (warmth)
                        {
                            if (warmth.VerifiedAt is not { } at || at < now)
                            {
                                warmth.VerifiedAt = now;
                            }
                        }
                    }

                    // Unless a waiter let this fetch go and another one runs now.
                    if (slot.InFlight == fetch.Task)
                    {
                        slot.InFlight = null;
                    }
                }

                fetch.SetResult(outcome);
            }
        }
    }

    private static async Task<Outcome> FetchAsync(X509Certificate2 issuingCa, DateTimeOffset now, TimeSpan fetchTimeout, IFunctionCrlSource source)
    {
        byte[] bytes;
        using var limit = new CancellationTokenSource(fetchTimeout);
        try
        {
            bytes = await source.FetchAsync(issuingCa, limit.Token).ConfigureAwait(false);
        }
        catch (CrlFetchException e)
        {
            return new Outcome(null, e.Message);
        }
        catch (OperationCanceledException)
        {
            return new Outcome(null, $"it did not serve the CRL within {fetchTimeout.TotalSeconds:0.#} s");
        }

        CertificateRevocationList crl;
        try
        {
            crl = CertificateRevocationList.Parse(bytes);
        }
        catch (EvidenceFormatException e)
        {
            return new Outcome(null, $"what it served is not a CRL ({e.Message})");
        }

        return Problem(crl, issuingCa, now) is { } problem ? new Outcome(null, problem) : new Outcome(new Entry(crl, now), null);
    }

    /// <summary>Why <paramref name="crl"/> cannot stand for <paramref name="issuingCa"/>'s revocations at <paramref name="now"/>, or null.</summary>
    internal static string? Problem(CertificateRevocationList crl, X509Certificate2 issuingCa, DateTimeOffset now)
    {
        if (!crl.Issuer.RawData.AsSpan().SequenceEqual(issuingCa.SubjectName.RawData))
        {
            return $"the CRL's issuer '{crl.Issuer.Name}' is not the issuing CA";
        }

        // The issuing CA is the one the chain to the pinned KMS root verified, so only the KMS's CA key passes this.
        if (!crl.VerifySignature(issuingCa))
        {
            return "the CRL's signature does not verify with the issuing CA's key: the KMS's CA did not sign it";
        }

        if (crl.NextUpdate is not { } nextUpdate)
        {
            return "the CRL has no nextUpdate, so whether it is current cannot be told";
        }

        if (now < crl.ThisUpdate)
        {
            return $"the CRL is not valid yet (thisUpdate {crl.ThisUpdate.UtcDateTime:yyyy-MM-ddTHH:mm:ssZ} is after this client's clock, {now.UtcDateTime:yyyy-MM-ddTHH:mm:ssZ})";
        }

        if (now >= nextUpdate)
        {
            return $"the CRL is stale (its nextUpdate {nextUpdate.UtcDateTime:yyyy-MM-ddTHH:mm:ssZ} has passed)";
        }

        return null;
    }

    private static bool IsFresh(Entry entry, X509Certificate2 issuingCa, DateTimeOffset now, TimeSpan maxAge) =>
        now >= entry.FetchedAt && now - entry.FetchedAt < maxAge
        && now >= entry.Crl.ThisUpdate && now < entry.Crl.NextUpdate
        // Same key, another name (a CA certificate re-issued for the key): checked again against that certificate.
        && entry.Crl.Issuer.RawData.AsSpan().SequenceEqual(issuingCa.SubjectName.RawData);

    private static string? Verdict(CertificateRevocationList crl, X509Certificate2 leaf) =>
        crl.IsRevoked(leaf)
            ? $"revocation: the certificate (serial {leaf.SerialNumber.ToLowerInvariant()}) is revoked on the KMS's CRL: "
                + "its revision was retired or its function deleted"
            : null;

    private Slot SlotFor(string key, DateTimeOffset now, TimeSpan maxAge)
    {
        if (_slots.TryGetValue(key, out var slot))
        {
            return slot;
        }

        if (_slots.Count >= _capacity)
        {
            Trim(now, maxAge);
        }

        return _slots.GetOrAdd(key, _ => new Slot());
    }

    // Slots whose CRL is past use go first; if the cache is still full (more issuing CAs than it holds), every slot
    // without a fetch under way goes: a miss costs one fetch, and a bounded cache matters more than keeping each CRL.
    private void Trim(DateTimeOffset now, TimeSpan maxAge)
    {
        foreach (var (key, slot) in _slots)
        {
            lock (slot)
            {
                if (slot.InFlight is null && (slot.Current is not { } entry || now - entry.FetchedAt >= maxAge || now >= entry.Crl.NextUpdate))
                {
                    _slots.TryRemove(key, out _);
                }
            }
        }

        if (_slots.Count >= _capacity)
        {
            foreach (var (key, slot) in _slots)
            {
                lock (slot)
                {
                    if (slot.InFlight is null)
                    {
                        _slots.TryRemove(key, out _);
                    }
                }
            }
        }
    }

    private sealed class Slot
    {
        public Entry? Current { get; set; }

        public Task<Outcome>? InFlight { get; set; }
    }

    private sealed record Entry(CertificateRevocationList Crl, DateTimeOffset FetchedAt);

    private Warmth WarmthFor(IFunctionCrlSource source)
    {
        if (_warmth.Count >= _capacity && !_warmth.ContainsKey(source.Name))
        {
            // Bounded like the slots: a miss costs one fetch.
            foreach (var (name, held) in _warmth)
            {
                lock (held)
                {
                    if (held.InFlight is null)
                    {
                        _warmth.TryRemove(name, out _);
                    }
                }
            }
        }

        return _warmth.GetOrAdd(source.Name, _ => new Warmth());
    }

    private sealed class Warmth
    {
        /// <summary>The default issuer's CRL, parsed but not yet checked: which CA's it is, a handshake tells.</summary>
        public Entry? Prefetched { get; set; }

        /// <summary>When a fetch started that last gave a handshake a valid CRL from this source.</summary>
        public DateTimeOffset? VerifiedAt { get; set; }

        public Task? InFlight { get; set; }
    }

    private sealed record Outcome(Entry? Entry, string? Failure);
}
