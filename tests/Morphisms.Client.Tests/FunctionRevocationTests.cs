using System.Net;
using System.Net.Security;
using System.Net.Sockets;
using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;
using System.Text;
using Microsoft.Extensions.Time.Testing;
using Morphisms.Client.Functions;
using Morphisms.Client.Trust;

namespace Morphisms.Client.Tests;

/// <summary>
/// A CRL source that serves what the test says, counting fetches; a gate holds a fetch until the test opens it, a delay
/// answers after that long (<see cref="Timeout.InfiniteTimeSpan"/>: never, ignoring cancellation).
/// </summary>
internal sealed class StaticCrlSource(byte[] crl) : IFunctionCrlSource
{
    private int _calls;

    public byte[] Crl { get; set; } = crl;

    public string? Failure { get; set; }

    public ManualResetEventSlim? Gate { get; set; }

    public TimeSpan? Delay { get; init; }

    public int Calls => Volatile.Read(ref _calls);

    /// <summary>What the warm-up's fetch of the default issuer's CRL serves (default: <see cref="Crl"/>).</summary>
    public byte[]? DefaultCrl { get; set; }

    public string? DefaultFailure { get; set; }

    public int DefaultCalls => Volatile.Read(ref _defaultCalls);

    private int _defaultCalls;

    public string Name => "the KMS https://kms.test/";

    public async Task<byte[]> FetchAsync(X509Certificate2 issuingCa, CancellationToken cancellationToken)
    {
        Interlocked.Increment(ref _calls);
        if (Gate is { } gate)
        {
            await Task.Factory.StartNew(() => gate.Wait(TimeSpan.FromSeconds(30)), CancellationToken.None, TaskCreationOptions.LongRunning, TaskScheduler.Default);
        }

        if (Delay is { } delay)
        {
            await (delay == Timeout.InfiniteTimeSpan ? new TaskCompletionSource().Task : Task.Delay(delay, cancellationToken));
        }

        return Failure is { } failure ? throw new CrlFetchException(failure) : Crl;
    }

    public async Task<byte[]> FetchDefaultAsync(CancellationToken cancellationToken)
    {
        Interlocked.Increment(ref _defaultCalls);
        if (Delay is { } delay)
        {
            await (delay == Timeout.InfiniteTimeSpan ? new TaskCompletionSource().Task : Task.Delay(delay, cancellationToken));
        }

        return DefaultFailure is { } failure ? throw new CrlFetchException(failure) : DefaultCrl ?? Crl;
    }
}

/// <summary>
/// Function certificates are looked up in the KMS's CRL of the CA that issued them, on every handshake: a revoked one is
/// refused, and so is every one when no valid CRL can be had (fail closed).
/// </summary>
public sealed class FunctionRevocationTests : IDisposable
{
    private const string Host = "signer.fn.morphisms.local";
    private readonly TestPki _pki = new();
    private readonly byte[] _measurement = SHA384.HashData("signer bundle"u8);

    public void Dispose() => _pki.Dispose();

    private FunctionExpectation Expect() => new() { Function = "signer", Host = Host, AllowSimulated = true };

    private IReadOnlyList<string> Validate(X509Certificate2 leaf, IFunctionCrlSource source, FunctionCrlCache? cache = null, DateTimeOffset? now = null,
        VerifiedChainCache? chainCache = null, TimeSpan? maxAge = null, TimeSpan? fetchTimeout = null) =>
        FunctionCertificateValidator.Validate(leaf, [_pki.Intermediate], _pki.Root, Expect(), now ?? DateTimeOffset.UtcNow, chainCache ?? new VerifiedChainCache(),
            new FunctionRevocationChecker(cache ?? new FunctionCrlCache(), source, maxAge ?? TimeSpan.FromSeconds(30), fetchTimeout), out _);

    [Fact]
    public void A_revoked_certificate_is_refused()
    {
        using var leaf = _pki.Leaf("signer", Host, _measurement);
        var refused = Assert.Single(Validate(leaf, new StaticCrlSource(_pki.Crl([leaf]))));
        Assert.Equal($"revocation: the certificate (serial {leaf.SerialNumber.ToLowerInvariant()}) is revoked on the KMS's CRL: its revision was retired or its function deleted", refused);
    }

    [Fact]
    public void A_leaf_sent_without_its_intermediate_is_refused_even_when_this_machine_holds_the_intermediate()
    {
        // The chain then builds through the user's CA store; checked against the root's CRL, the revoked leaf passed.
        // The intermediate's name is this test's own: in the store, a shared name would shadow other tests' intermediates.
        _pki.RotateIntermediate($"CN=store test intermediate {Guid.NewGuid():N}");
        using var leaf = _pki.Leaf("signer", Host, _measurement);
        using var store = new X509Store(StoreName.CertificateAuthority, StoreLocation.CurrentUser);
        store.Open(OpenFlags.ReadWrite);
        store.Add(_pki.Intermediate);
        try
        {
            var rootCrl = new CertificateRevocationListBuilder().Build(_pki.Root, System.Numerics.BigInteger.One, DateTimeOffset.UtcNow.AddHours(72), HashAlgorithmName.SHA384);
            var failures = FunctionCertificateValidator.Validate(leaf, [], _pki.Root, Expect(), DateTimeOffset.UtcNow, new VerifiedChainCache(),
                new FunctionRevocationChecker(new FunctionCrlCache(), new StaticCrlSource(rootCrl), TimeSpan.FromSeconds(30)), out _);
            Assert.Contains("chain: the server did not send the CA that issued its certificate", Assert.Single(failures), StringComparison.Ordinal);
        }
        finally
        {
            store.Remove(_pki.Intermediate);
        }
    }

    [Fact]
    public void A_certificate_not_on_a_current_crl_passes()
    {
        using var leaf = _pki.Leaf("signer", Host, _measurement);
        using var other = _pki.Leaf("signer", Host, _measurement);
        Assert.Empty(Validate(leaf, new StaticCrlSource(_pki.Crl([other]))));
    }

    [Fact]
    public void A_crl_signed_by_another_key_is_refused_naming_the_kms_and_the_reason()
    {
        using var leaf = _pki.Leaf("signer", Host, _measurement);
        using var forger = ECDsa.Create(ECCurve.NamedCurves.nistP384);

        // Same issuer name as the intermediate, another key: an empty CRL that would hide the revocation.
        var refused = Assert.Single(Validate(leaf, new StaticCrlSource(_pki.Crl(signer: forger))));
        Assert.StartsWith("revocation: no valid CRL for the issuing CA 'CN=Test KMS Intermediate 1' could be had from the KMS https://kms.test/: ", refused);
        Assert.Contains("the CRL's signature does not verify with the issuing CA's key", refused);
    }

    [Fact]
    public void A_crl_of_another_ca_is_refused()
    {
        using var leaf = _pki.Leaf("signer", Host, _measurement);
        var crl = _pki.Crl();
        _pki.RotateIntermediate();
        using var newer = _pki.Leaf("signer", Host, _measurement);

        // The old intermediate's CRL for a certificate of the new one.
        var refused = Assert.Single(FunctionCertificateValidator.Validate(newer, [_pki.Intermediate], _pki.Root, Expect(), DateTimeOffset.UtcNow, null,
            new FunctionRevocationChecker(new FunctionCrlCache(), new StaticCrlSource(crl), TimeSpan.FromSeconds(30)), out _));
        Assert.Contains("the CRL's issuer 'CN=Test KMS Intermediate 1' is not the issuing CA", refused);
    }

    [Fact]
    public void A_stale_crl_is_refused()
    {
        using var leaf = _pki.Leaf("signer", Host, _measurement);
        var now = DateTimeOffset.UtcNow;
        var refused = Assert.Single(Validate(leaf, new StaticCrlSource(_pki.Crl(thisUpdate: now.AddHours(-73), nextUpdate: now.AddHours(-1)))));
        Assert.Contains("the CRL is stale (its nextUpdate", refused);

        // Exactly at nextUpdate is past it.
        var atNext = Assert.Single(Validate(leaf, new StaticCrlSource(_pki.Crl(thisUpdate: now.AddHours(-1), nextUpdate: now)), now: now));
        Assert.Contains("the CRL is stale", atNext);

        Assert.Contains("the CRL is not valid yet", Assert.Single(Validate(leaf, new StaticCrlSource(_pki.Crl(thisUpdate: now.AddMinutes(5))))));
    }

    [Fact]
    public void What_is_not_a_crl_is_refused()
    {
        using var leaf = _pki.Leaf("signer", Host, _measurement);
        Assert.Contains("what it served is not a CRL", Assert.Single(Validate(leaf, new StaticCrlSource("{\"errors\":[]}"u8.ToArray()))));
    }

    [Fact]
    public void An_unreachable_kms_refuses_every_certificate_naming_it()
    {
        using var leaf = _pki.Leaf("signer", Host, _measurement);
        var closed = new TcpListener(IPAddress.Loopback, 0);
        closed.Start();
        var port = ((IPEndPoint)closed.LocalEndpoint).Port;
        closed.Stop();

        var refused = Assert.Single(Validate(leaf, new KmsCrlSource(Record($"https://127.0.0.1:{port}/", new string('0', 64)), TimeSpan.FromSeconds(5))));
        Assert.StartsWith($"revocation: no valid CRL for the issuing CA 'CN=Test KMS Intermediate 1' could be had from the KMS https://127.0.0.1:{port}/: it could not be reached (", refused);
        Assert.EndsWith("the certificate is refused, as its revocation cannot be checked", refused);
    }

    [Fact]
    public void A_fetch_failure_is_not_cached_and_the_next_handshake_fetches_again()
    {
        using var leaf = _pki.Leaf("signer", Host, _measurement);
        var source = new StaticCrlSource(_pki.Crl()) { Failure = "the KMS answered 503: Vault is sealed" };
        var cache = new FunctionCrlCache();
        Assert.Contains("Vault is sealed", Assert.Single(Validate(leaf, source, cache)));

        source.Failure = null;
        Assert.Empty(Validate(leaf, source, cache));
        Assert.Equal(2, source.Calls);
    }

    [Fact]
    public void The_crl_is_fetched_again_after_the_max_age_and_a_revocation_then_refuses()
    {
        using var leaf = _pki.Leaf("signer", Host, _measurement);
        var time = new FakeTimeProvider(DateTimeOffset.UtcNow);
        var source = new StaticCrlSource(_pki.Crl());
        var cache = new FunctionCrlCache();
        var chains = new VerifiedChainCache();

        Assert.Empty(Validate(leaf, source, cache, time.GetUtcNow(), chains));
        source.Crl = _pki.Crl([leaf]);

        // Within half the max age the CRL held is used, and nothing is fetched: the revocation is not seen yet.
        time.Advance(TimeSpan.FromSeconds(14));
        Assert.Empty(Validate(leaf, source, cache, time.GetUtcNow(), chains));
        Assert.Equal(1, source.Calls);

        // Past the max age the CRL is fetched again, and the check runs though the chain comes from the chain cache.
        time.Advance(TimeSpan.FromSeconds(17));
        Assert.Contains("is revoked on the KMS's CRL", Assert.Single(Validate(leaf, source, cache, time.GetUtcNow(), chains)));
        Assert.Equal(2, source.Calls);
        Assert.Equal(2, cache.Fetches);
        Assert.Equal((1, 2), (chains.Misses, chains.Hits));
    }

    [Fact]
    public void A_crl_past_its_next_update_is_fetched_again_within_the_max_age()
    {
        using var leaf = _pki.Leaf("signer", Host, _measurement);
        var time = new FakeTimeProvider(DateTimeOffset.UtcNow);
        var source = new StaticCrlSource(_pki.Crl(nextUpdate: time.GetUtcNow().AddSeconds(10)));
        var cache = new FunctionCrlCache();
        Assert.Empty(Validate(leaf, source, cache, time.GetUtcNow()));

        time.Advance(TimeSpan.FromSeconds(11));
        source.Crl = _pki.Crl();
        Assert.Empty(Validate(leaf, source, cache, time.GetUtcNow()));
        Assert.Equal(2, source.Calls);
    }

    [Fact]
    public async Task Concurrent_handshakes_wait_for_one_fetch_and_share_its_outcome()
    {
        using var leaf = _pki.Leaf("signer", Host, _measurement);
        using var gate = new ManualResetEventSlim();
        var source = new StaticCrlSource(_pki.Crl()) { Gate = gate };
        var cache = new FunctionCrlCache();
        var chains = new VerifiedChainCache();

        // A fetch timeout no slow machine reaches while the burst gathers: a waiter that gave up would let the fetch go.
        var patient = TimeSpan.FromMinutes(1);
        var handshakes = await StartWaitingAsync(() => Validate(leaf, source, cache, chainCache: chains, fetchTimeout: patient), source, cache);
        gate.Set();
        Assert.All(await Task.WhenAll(handshakes), Assert.Empty);
        Assert.Equal(1, source.Calls);
        Assert.Equal(1, cache.Fetches);

        // A failure is shared the same way: each waiting handshake is refused with it, after one fetch.
        using var failing = new ManualResetEventSlim();
        var down = new StaticCrlSource(_pki.Crl()) { Gate = failing, Failure = "it could not be reached (Connection refused)" };
        var fresh = new FunctionCrlCache();
        var refused = await StartWaitingAsync(() => Validate(leaf, down, fresh, chainCache: chains, fetchTimeout: patient), down, fresh);
        failing.Set();
        Assert.All(await Task.WhenAll(refused), f => Assert.Contains("Connection refused", Assert.Single(f)));
        Assert.Equal(1, down.Calls);
    }

    [Fact]
    public async Task A_kms_that_never_answers_refuses_within_the_fetch_timeout_and_the_next_handshake_fetches_again()
    {
        using var leaf = _pki.Leaf("signer", Host, _measurement);
        var source = new StaticCrlSource(_pki.Crl()) { Delay = Timeout.InfiniteTimeSpan };
        var cache = new FunctionCrlCache();
        var timeout = TimeSpan.FromMilliseconds(300);
        var clock = System.Diagnostics.Stopwatch.StartNew();

        // The source ignores its token, as a hung KMS connection might: the wait itself is bounded. Which bound ran, the
        // refusal says (0.3 s); the clock only shows it was waited for and ended, with room for a loaded machine.
        var refused = Assert.Single(await Task.Run(() => Validate(leaf, source, cache, fetchTimeout: timeout)).WaitAsync(TimeSpan.FromSeconds(30)));
        Assert.InRange(clock.Elapsed, timeout, TimeSpan.FromSeconds(30));
        Assert.Equal("revocation: no CRL for the issuing CA 'CN=Test KMS Intermediate 1' came from the KMS https://kms.test/ within 0.3 s "
            + "(FunctionRevocationOptions.FetchTimeout); the certificate is refused, as its revocation cannot be checked", refused);

        // The hung fetch is let go: the next handshake starts another.
        Assert.Single(await Task.Run(() => Validate(leaf, source, cache, fetchTimeout: timeout)).WaitAsync(TimeSpan.FromSeconds(30)));
        Assert.Equal(2, source.Calls);
    }

    [Fact]
    public async Task Past_half_the_max_age_a_handshake_is_answered_from_the_crl_held_and_one_refresh_starts_in_the_background()
    {
        using var leaf = _pki.Leaf("signer", Host, _measurement);
        var time = new FakeTimeProvider(DateTimeOffset.UtcNow);
        var source = new StaticCrlSource(_pki.Crl());
        var cache = new FunctionCrlCache();
        var chains = new VerifiedChainCache();
        Assert.Empty(Validate(leaf, source, cache, time.GetUtcNow(), chains));

        // At 60 % of the max age, with the KMS holding its answer and the leaf now revoked: the handshakes are answered
        // at once from the CRL held, and one fetch of its successor is under way.
        using var gate = new ManualResetEventSlim();
        source.Gate = gate;
        source.Crl = _pki.Crl([leaf]);
        time.Advance(TimeSpan.FromSeconds(18));
        for (var i = 0; i < 5; i++)
        {
            Assert.Empty(Validate(leaf, source, cache, time.GetUtcNow(), chains));
        }

        Assert.Equal(2, source.Calls);
        Assert.Equal(2, cache.Fetches);

        // Once it lands, the refreshed CRL answers, with no further fetch.
        gate.Set();
        var deadline = DateTime.UtcNow.AddSeconds(30);
        while (Validate(leaf, source, cache, time.GetUtcNow(), chains).Count == 0 && DateTime.UtcNow < deadline)
        {
            await Task.Delay(10);
        }

        Assert.Contains("is revoked on the KMS's CRL", Assert.Single(Validate(leaf, source, cache, time.GetUtcNow(), chains)));
        Assert.Equal(2, source.Calls);
    }

    /// <summary>
    /// Starts 20 handshakes at once, each on a thread of its own (as many as a burst's TLS callbacks, without waiting for
    /// the thread pool to grow), and returns once every one of them waits in <paramref name="cache"/> on a fetch under way,
    /// which the source's gate holds. Not after a guessed delay: the cache keeps no failure, so a handshake that arrived
    /// only after a failed fetch was released would start a second one.
    /// </summary>
    private static async Task<List<Task<IReadOnlyList<string>>>> StartWaitingAsync(Func<IReadOnlyList<string>> handshake, StaticCrlSource source, FunctionCrlCache cache)
    {
        const int Burst = 20;
        var handshakes = Enumerable.Range(0, Burst).Select(_ => Task.Factory.StartNew(handshake, CancellationToken.None, TaskCreationOptions.LongRunning, TaskScheduler.Default)).ToList();

        // Within the source's gate (30 s), after which the held fetch would go on by itself.
        var deadline = DateTime.UtcNow.AddSeconds(20);
        while (cache.Waiting < Burst)
        {
            Assert.True(DateTime.UtcNow < deadline, $"only {cache.Waiting} of {Burst} handshakes wait on the fetch ({source.Calls} fetches started)");
            Assert.DoesNotContain(handshakes, h => h.IsCompleted);
            await Task.Delay(10);
        }

        // All held by the gate, so all wait on the one fetch: none can have started another.
        Assert.Equal(1, source.Calls);
        return handshakes;
    }

    [Fact]
    public void The_cache_is_bounded()
    {
        var cache = new FunctionCrlCache(capacity: 2);
        for (var i = 0; i < 5; i++)
        {
            _pki.RotateIntermediate();
            using var leaf = _pki.Leaf("signer", Host, _measurement);
            Assert.Empty(Validate(leaf, new StaticCrlSource(_pki.Crl()), cache));
            Assert.InRange(cache.Count, 1, 2);
        }
    }

    [Fact]
    public async Task Turned_off_no_crl_is_fetched_and_a_warning_says_so()
    {
        using var leaf = _pki.Leaf("signer", Host, _measurement);
        await using var server = HttpsFunction(leaf);
        var warnings = new List<string>();
        var source = new StaticCrlSource(_pki.Crl([leaf]));
        IReadOnlyList<string>? refused = null;

        // Required (the default): the revoked certificate is refused and nothing is sent.
        using (var checking = Client(server.Endpoint.Port, new FunctionRevocationOptions { Source = source, Cache = new FunctionCrlCache(), OnWarning = warnings.Add }, f => refused = f))
        {
            await Assert.ThrowsAsync<HttpRequestException>(() => checking.GetStringAsync($"https://{Host}/"));
        }

        Assert.Contains("is revoked on the KMS's CRL", Assert.Single(refused!));
        Assert.Equal(0, server.RequestsServed);
        Assert.Empty(warnings);

        using (var unchecked_ = Client(server.Endpoint.Port, new FunctionRevocationOptions { Check = RevocationCheck.Off, Source = source, OnWarning = warnings.Add }))
        {
            Assert.Equal("signed", await unchecked_.GetStringAsync($"https://{Host}/"));
        }

        Assert.Equal(1, source.Calls);
        Assert.StartsWith("WARNING: revocation checking of function certificates is OFF", Assert.Single(warnings));
    }

    [Fact]
    public async Task A_cold_burst_of_first_connections_waits_for_one_warm_up_fetch_before_connecting_and_every_handshake_passes()
    {
        // Each handshake that found no CRL would block a thread-pool thread in the synchronous TLS callback, and the fetch's
        // own completions would queue behind them: the warm-up fetches before connecting, where waiting holds no thread.
        using var leaf = _pki.Leaf("signer", Host, _measurement);
        await using var server = HttpsFunction(leaf);
        var source = new StaticCrlSource(_pki.Crl()) { Delay = TimeSpan.FromMilliseconds(200) };
        var refusals = new System.Collections.Concurrent.ConcurrentBag<IReadOnlyList<string>>();
        using var http = Client(server.Endpoint.Port, new FunctionRevocationOptions { Source = source, Cache = new FunctionCrlCache(), FetchTimeout = TimeSpan.FromSeconds(5) },
            refusals.Add, warmUp: true);

        var clock = System.Diagnostics.Stopwatch.StartNew();
        var bodies = await Task.WhenAll(Enumerable.Range(0, 64).Select(_ => Task.Run(() => http.GetStringAsync($"https://{Host}/"))));

        Assert.Empty(refusals);
        Assert.All(bodies, b => Assert.Equal("signed", b));

        // What shows the burst waited for one fetch is the counts; the clock only catches a burst stuck far past the
        // fetch's 0.2 s, with room for a loaded machine growing its thread pool.
        Assert.InRange(clock.Elapsed, TimeSpan.Zero, TimeSpan.FromSeconds(30));
        Assert.Equal((1, 0), (source.DefaultCalls, source.Calls));

        // Warm now: the next connection does not fetch again.
        Assert.Equal("signed", await http.GetStringAsync($"https://{Host}/"));
        Assert.Equal((1, 0), (source.DefaultCalls, source.Calls));
    }

    [Fact]
    public async Task With_its_ConnectCallback_replaced_the_handshakes_fetch_the_crl_themselves_bounded_by_the_fetch_timeout_with_the_same_verdicts()
    {
        // Create returns a SocketsHttpHandler, whose ConnectCallback (the warm-up around Create's connect) a caller can
        // replace. That skips the warm-up, not the check: each handshake that finds no CRL waits in its TLS callback for
        // the fetch, at most FetchTimeout, and a burst shares one fetch.
        using var leaf = _pki.Leaf("signer", Host, _measurement);
        await using var server = HttpsFunction(leaf);
        var source = new StaticCrlSource(_pki.Crl()) { Delay = TimeSpan.FromMilliseconds(200) };
        var refusals = new System.Collections.Concurrent.ConcurrentBag<IReadOnlyList<string>>();
        using (var http = Client(server.Endpoint.Port, new FunctionRevocationOptions { Source = source, Cache = new FunctionCrlCache(), FetchTimeout = TimeSpan.FromSeconds(5) }, refusals.Add))
        {
            var bodies = await Task.WhenAll(Enumerable.Range(0, 32).Select(_ => Task.Run(() => http.GetStringAsync($"https://{Host}/"))));
            Assert.All(bodies, b => Assert.Equal("signed", b));
        }

        Assert.Empty(refusals);
        Assert.Equal((0, 1), (source.DefaultCalls, source.Calls));

        // A listed certificate is refused.
        IReadOnlyList<string>? refused = null;
        using (var http = Client(server.Endpoint.Port, new FunctionRevocationOptions { Source = new StaticCrlSource(_pki.Crl([leaf])), Cache = new FunctionCrlCache() }, f => refused = f))
        {
            await Assert.ThrowsAsync<HttpRequestException>(() => http.GetStringAsync($"https://{Host}/"));
        }

        Assert.Contains("is revoked on the KMS's CRL", Assert.Single(refused!));

        // A KMS that never answers: refused once the fetch timeout runs out, the handshake's thread let go.
        refused = null;
        var hung = new StaticCrlSource(_pki.Crl()) { Delay = Timeout.InfiniteTimeSpan };
        var clock = System.Diagnostics.Stopwatch.StartNew();
        using (var http = Client(server.Endpoint.Port, new FunctionRevocationOptions { Source = hung, Cache = new FunctionCrlCache(), FetchTimeout = TimeSpan.FromMilliseconds(300) }, f => refused = f))
        {
            await Assert.ThrowsAsync<HttpRequestException>(() => http.GetStringAsync($"https://{Host}/").WaitAsync(TimeSpan.FromSeconds(30)));
        }

        // Which bound ran, the refusal says (0.3 s); the clock only shows the handshake was let go, with room for a loaded machine.
        Assert.InRange(clock.Elapsed, TimeSpan.FromMilliseconds(300), TimeSpan.FromSeconds(30));
        Assert.Contains("came from the KMS https://kms.test/ within 0.3 s", Assert.Single(refused!));
        Assert.Equal(32, server.RequestsServed);
    }

    [Fact]
    public async Task A_warmed_up_crl_of_another_ca_is_not_used_and_the_issuing_cas_crl_is_fetched()
    {
        // After a rotation the default issuer is another CA than the one that issued a live certificate.
        using var other = new TestPki();
        using var leaf = _pki.Leaf("signer", Host, _measurement);
        var cache = new FunctionCrlCache();
        var source = new StaticCrlSource(_pki.Crl([leaf])) { DefaultCrl = other.Crl() };
        await cache.WarmAsync(source, DateTimeOffset.UtcNow, TimeSpan.FromSeconds(30), TimeSpan.FromSeconds(5), CancellationToken.None);

        Assert.Contains("is revoked on the KMS's CRL", Assert.Single(Validate(leaf, source, cache)));
        Assert.Equal((1, 1), (source.DefaultCalls, source.Calls));
    }

    [Fact]
    public async Task Handlers_for_the_same_kms_share_one_warm_up()
    {
        // Every FunctionHttpHandler.Create makes its own source: a client making a handler per call (the load bench does)
        // fetched a CRL before every connection, which doubled the time from readiness to the first byte.
        var cache = new FunctionCrlCache();
        var first = new StaticCrlSource(_pki.Crl());
        var second = new StaticCrlSource(_pki.Crl());
        await cache.WarmAsync(first, DateTimeOffset.UtcNow, TimeSpan.FromSeconds(30), TimeSpan.FromSeconds(5), CancellationToken.None);
        await cache.WarmAsync(second, DateTimeOffset.UtcNow, TimeSpan.FromSeconds(30), TimeSpan.FromSeconds(5), CancellationToken.None);

        Assert.Equal((1, 0), (first.DefaultCalls, second.DefaultCalls));
        using var leaf = _pki.Leaf("signer", Host, _measurement);
        Assert.Empty(Validate(leaf, second, cache));
        Assert.Equal(0, second.Calls);
    }

    [Fact]
    public async Task A_revoked_certificate_is_refused_when_its_crl_came_from_the_warm_up()
    {
        using var leaf = _pki.Leaf("signer", Host, _measurement);
        var cache = new FunctionCrlCache();
        var source = new StaticCrlSource(_pki.Crl()) { DefaultCrl = _pki.Crl([leaf]) };
        await cache.WarmAsync(source, DateTimeOffset.UtcNow, TimeSpan.FromSeconds(30), TimeSpan.FromSeconds(5), CancellationToken.None);

        Assert.Contains("is revoked on the KMS's CRL", Assert.Single(Validate(leaf, source, cache)));
        Assert.Equal((1, 0), (source.DefaultCalls, source.Calls));
    }

    [Fact]
    public async Task A_failed_warm_up_is_not_fatal_and_the_handshakes_own_fetch_decides()
    {
        using var leaf = _pki.Leaf("signer", Host, _measurement);
        var cache = new FunctionCrlCache();
        var source = new StaticCrlSource(_pki.Crl()) { DefaultFailure = "GET /v1/pki/crl/pem answered 503", Failure = "it could not be reached (refused)" };
        await cache.WarmAsync(source, DateTimeOffset.UtcNow, TimeSpan.FromSeconds(30), TimeSpan.FromSeconds(5), CancellationToken.None);

        // The handshake's fetch fails too: refused with its reason, as without a warm-up.
        var refused = Assert.Single(Validate(leaf, source, cache));
        Assert.Contains("could be had from the KMS https://kms.test/: it could not be reached (refused)", refused);

        // The handshake's fetch succeeds: it passes.
        source.Failure = null;
        Assert.Empty(Validate(leaf, source, cache));
        Assert.Equal((1, 2), (source.DefaultCalls, source.Calls));
    }

    private HttpClient Client(int port, FunctionRevocationOptions revocation, Action<IReadOnlyList<string>>? rejected = null, bool warmUp = false)
    {
        async ValueTask<Stream> Loopback(SocketsHttpConnectionContext _, CancellationToken ct)
        {
            var socket = new Socket(SocketType.Stream, ProtocolType.Tcp);
            await socket.ConnectAsync(new IPEndPoint(IPAddress.Loopback, port), ct);
            return new NetworkStream(socket, ownsSocket: true);
        }

        // Given to Create, the connection is opened after the CRL warm-up; set on the handler, it replaces the warm-up.
        var handler = FunctionHttpHandler.Create(Record("https://kms.test/", new string('0', 64)), Expect(), onRejected: rejected, chainCache: new VerifiedChainCache(), revocation: revocation,
            connect: warmUp ? Loopback : null);
        if (!warmUp)
        {
            handler.ConnectCallback = Loopback;
        }

        return new HttpClient(handler);
    }

    private TlsTestServer HttpsFunction(X509Certificate2 leaf) =>
        new(SslStreamCertificateContext.Create(leaf, [_pki.Intermediate], offline: true),
            _ => Encoding.ASCII.GetBytes("HTTP/1.1 200 OK\r\nContent-Length: 6\r\nConnection: close\r\n\r\nsigned"));

    private KmsTrustRecord Record(string url, string tlsSpki) => new()
    {
        KmsUrl = url,
        RootCaPem = _pki.Root.ExportCertificatePem(),
        RootCaSha256 = Convert.ToHexStringLower(SHA256.HashData(_pki.Root.RawData)),
        TlsSpkiSha256 = tlsSpki,
        Tee = "snp",
        Measurement = "snp:" + new string('0', 96),
        ExpectedMeasurements = ["snp:" + new string('0', 96)],
        Simulated = true,
        VerifiedAt = DateTimeOffset.UtcNow,
    };
}
