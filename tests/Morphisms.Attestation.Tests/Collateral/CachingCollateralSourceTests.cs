using Microsoft.Extensions.Time.Testing;
using Morphisms.Attestation.Collateral;

namespace Morphisms.Attestation.Tests.Collateral;

public class CachingCollateralSourceTests
{
    private static readonly DcapCollateralRequest Request = new(TeeType.Sgx, "00606A000000", PckCaType.Platform);

    /// <summary>Counts calls and answers with whatever the test sets.</summary>
    private sealed class CountingSource(Func<DcapCollateral?> answer) : ICollateralSource
    {
        public int Calls { get; private set; }

        public Func<DcapCollateral?> Answer { get; set; } = answer;

        public ValueTask<DcapCollateral?> GetDcapCollateralAsync(DcapCollateralRequest request, CancellationToken cancellationToken = default)
        {
            Calls++;
            return ValueTask.FromResult(Answer());
        }
    }

    [VectorFact]
    public async Task Entries_live_until_the_earliest_next_update()
    {
        // Automata 2025-08-15: QE identity is due first, at 2025-09-14T04:36:46Z.
        var set = CollateralVectors.Get("sgx-icelake-automata");
        var collateral = set.Load();
        var inner = new CountingSource(() => collateral);
        var clock = new FakeTimeProvider(set.At);
        var cache = new CachingCollateralSource(inner, clock, new CachingCollateralOptions { MaxAge = TimeSpan.FromDays(365) });

        await cache.GetDcapCollateralAsync(Request);
        clock.SetUtcNow(new DateTimeOffset(2025, 9, 14, 4, 36, 45, TimeSpan.Zero));
        var cached = await cache.GetDcapCollateralAsync(Request with { Fmspc = "00606a000000" });
        Assert.Equal(1, inner.Calls);
        Assert.Same(collateral, cached);

        clock.Advance(TimeSpan.FromSeconds(2));
        await cache.GetDcapCollateralAsync(Request);
        Assert.Equal(2, inner.Calls);
    }

    [VectorFact]
    public async Task Max_age_bounds_an_entry_whose_next_update_is_far_away()
    {
        var set = CollateralVectors.Get("sgx-icelake-automata");
        var collateral = set.Load();
        var inner = new CountingSource(() => collateral);
        var clock = new FakeTimeProvider(set.At);
        var cache = new CachingCollateralSource(inner, clock);

        await cache.GetDcapCollateralAsync(Request);
        clock.Advance(TimeSpan.FromMinutes(59));
        await cache.GetDcapCollateralAsync(Request);
        Assert.Equal(1, inner.Calls);

        clock.Advance(TimeSpan.FromMinutes(2));
        await cache.GetDcapCollateralAsync(Request);
        Assert.Equal(2, inner.Calls);
    }

    [VectorFact]
    public async Task Expired_collateral_is_returned_but_never_cached()
    {
        var set = CollateralVectors.Get("sgx-icelake-automata");
        var collateral = set.Load();
        var inner = new CountingSource(() => collateral);
        var cache = new CachingCollateralSource(inner, new FakeTimeProvider(new DateTimeOffset(2026, 11, 22, 0, 0, 0, TimeSpan.Zero)));

        Assert.Same(collateral, await cache.GetDcapCollateralAsync(Request));
        Assert.Same(collateral, await cache.GetDcapCollateralAsync(Request));
        Assert.Equal(2, inner.Calls);
    }

    [Fact]
    public async Task A_missing_answer_is_cached_briefly()
    {
        var inner = new CountingSource(() => null);
        var clock = new FakeTimeProvider(new DateTimeOffset(2025, 1, 1, 0, 0, 0, TimeSpan.Zero));
        var cache = new CachingCollateralSource(inner, clock, new CachingCollateralOptions { MissingAge = TimeSpan.FromMinutes(5) });

        Assert.Null(await cache.GetDcapCollateralAsync(Request));
        clock.Advance(TimeSpan.FromMinutes(4));
        Assert.Null(await cache.GetDcapCollateralAsync(Request));
        Assert.Equal(1, inner.Calls);
        clock.Advance(TimeSpan.FromMinutes(2));
        await cache.GetDcapCollateralAsync(Request);
        Assert.Equal(2, inner.Calls);
    }

    [Fact]
    public async Task Requests_for_other_platforms_are_cached_apart_and_errors_not_at_all()
    {
        var fail = true;
        var inner = new CountingSource(() => fail ? throw new HttpRequestException("PCS down") : new DcapCollateral());
        var cache = new CachingCollateralSource(inner, new FakeTimeProvider(new DateTimeOffset(2025, 1, 1, 0, 0, 0, TimeSpan.Zero)));

        await Assert.ThrowsAsync<HttpRequestException>(async () => await cache.GetDcapCollateralAsync(Request));
        fail = false;
        await cache.GetDcapCollateralAsync(Request);
        await cache.GetDcapCollateralAsync(Request with { CaType = PckCaType.Processor });
        await cache.GetDcapCollateralAsync(Request with { Tee = TeeType.Tdx });
        await cache.GetDcapCollateralAsync(Request);
        Assert.Equal(4, inner.Calls);
    }

    [Fact]
    public async Task Unreadable_crls_are_returned_and_cached_for_the_max_age()
    {
        // "-" passed for PEM: the verifier will refuse it with a reason, the cache must not throw.
        var collateral = new DcapCollateral { PckCrl = "-"u8.ToArray(), RootCaCrl = "-----BEGIN X509 CRL-----"u8.ToArray() };
        var inner = new CountingSource(() => collateral);
        var clock = new FakeTimeProvider(new DateTimeOffset(2025, 1, 1, 0, 0, 0, TimeSpan.Zero));
        var cache = new CachingCollateralSource(inner, clock);

        Assert.Same(collateral, await cache.GetDcapCollateralAsync(Request));
        clock.Advance(TimeSpan.FromMinutes(59));
        Assert.Same(collateral, await cache.GetDcapCollateralAsync(Request));
        Assert.Equal(1, inner.Calls);
    }

    [Fact]
    public async Task The_cache_holds_at_most_max_entries_however_many_platforms_are_asked_about()
    {
        var inner = new CountingSource(() => null);
        var clock = new FakeTimeProvider(new DateTimeOffset(2025, 1, 1, 0, 0, 0, TimeSpan.Zero));
        var cache = new CachingCollateralSource(inner, clock, new CachingCollateralOptions { MaxEntries = 8 });

        for (var i = 0; i < 100; i++)
        {
            await cache.GetDcapCollateralAsync(Request with { Fmspc = $"{i:x12}" });
            Assert.True(cache.Count <= 8, $"{cache.Count} entries after {i + 1} platforms");
        }

        // The newest are kept, the oldest went.
        await cache.GetDcapCollateralAsync(Request with { Fmspc = $"{99:x12}" });
        Assert.Equal(100, inner.Calls);
        await cache.GetDcapCollateralAsync(Request with { Fmspc = $"{0:x12}" });
        Assert.Equal(101, inner.Calls);
    }

    [Fact]
    public async Task Expired_entries_are_dropped_before_the_oldest_live_one()
    {
        var inner = new CountingSource(() => new DcapCollateral());
        var clock = new FakeTimeProvider(new DateTimeOffset(2025, 1, 1, 0, 0, 0, TimeSpan.Zero));
        var cache = new CachingCollateralSource(inner, clock, new CachingCollateralOptions { MaxEntries = 2, MaxAge = TimeSpan.FromHours(1), MissingAge = TimeSpan.FromMinutes(5) });

        await cache.GetDcapCollateralAsync(Request);                                   // kept an hour
        inner.Answer = () => null;
        await cache.GetDcapCollateralAsync(Request with { Fmspc = "00906ed50000" }); // kept 5 minutes
        clock.Advance(TimeSpan.FromMinutes(6));
        await cache.GetDcapCollateralAsync(Request with { Fmspc = "00a06d080000" });
        Assert.Equal(2, cache.Count);

        await cache.GetDcapCollateralAsync(Request);
        Assert.Equal(3, inner.Calls);
    }
}
