using Morphisms.Attestation.Collateral;
using Morphisms.Attestation.Trust;
using Morphisms.Attestation.Verify;
using Morphisms.Attestation.Verify.Dcap;

namespace Morphisms.Attestation.Tests.Dcap;

public class CacheTests
{
    /// <summary>
    /// The collateral cache must answer exactly as the collateral verifier would at every time,
    /// in particular at and around each instant where the answer can change.
    /// </summary>
    [VectorTheory]
    [InlineData("sgx-icelake-dcaprs-v2")]
    [InlineData("tdx-spr-gotdxguest-no-tcb-level")]
    [InlineData("tdx-emr-gotdxguest-v5")]
    [InlineData("sgx-rocketlake-phala")]
    public async Task The_collateral_cache_agrees_with_the_verifier_at_every_boundary(string name)
    {
        var row = DcapEndToEndCases.Get(name);
        var tee = row.QuoteDir == "sgx" ? TeeType.Sgx : TeeType.Tdx;
        var collateral = (await row.OpenSource().GetDcapCollateralAsync(new DcapCollateralRequest(tee, "000000000000", PckCaType.Platform)))!;

        var times = Instants(collateral)
            .SelectMany(t => new[] { t.AddSeconds(-1), t, t.AddSeconds(1) })
            .Append(row.At)
            .ToList();
        // Random order, twice, so entries are reused across cells as well as rebuilt.
        var random = new Random(7);
        foreach (var time in times.Concat(times).OrderBy(_ => random.Next()))
        {
            var direct = new CheckLog();
            CollateralVerifier.Verify(collateral, tee, TrustAnchors.Vendor, time, direct);
            var cached = new CheckLog();
            CollateralCache.Verify(collateral, tee, TrustAnchors.Vendor, time, cached);
            Assert.Equal(direct.Failures, cached.Failures);
        }
    }

    [VectorFact]
    public async Task Repeat_verifications_reuse_the_verified_collateral_and_tcb_evaluation()
    {
        var row = DcapEndToEndCases.Get("sgx-icelake-automata");
        var options = new DcapVerifyOptions
        {
            Time = new Microsoft.Extensions.Time.Testing.FakeTimeProvider(row.At),
            CollateralSource = row.OpenSource(),
        };
        var quote = TestVectors.Read(row.QuoteDir, row.QuoteFile);

        var first = await DcapVerifier.VerifyAsync(quote, options);
        var second = await DcapVerifier.VerifyAsync(quote, options);

        Assert.Same(first.Collateral, second.Collateral);
        Assert.Same(first.Tcb, second.Tcb);
        Assert.Same(first.PckChain, second.PckChain);
        Assert.Equal(first.Log.Failures, second.Log.Failures);
    }

    [Fact]
    public void The_bounded_cache_never_exceeds_its_capacity()
    {
        var cache = new BoundedCache<int, int>(4);
        for (var i = 0; i < 100; i++)
        {
            cache.Set(i, i);
            Assert.InRange(cache.Count, 1, 4);
        }

        Assert.True(cache.TryGet(99, out var value));
        Assert.Equal(99, value);
    }

    private static IEnumerable<DateTimeOffset> Instants(DcapCollateral collateral)
    {
        if (collateral.TcbInfo is { } tcb)
        {
            var parsed = TcbInfo.Parse(tcb.Body);
            yield return parsed.IssueDate;
            yield return parsed.NextUpdate;
        }

        if (collateral.QeIdentity is { } qe)
        {
            var parsed = EnclaveIdentity.Parse(qe.Body);
            yield return parsed.IssueDate;
            yield return parsed.NextUpdate;
        }

        foreach (var der in new[] { collateral.PckCrl, collateral.RootCaCrl }.OfType<byte[]>())
        {
            var crl = CertificateRevocationList.Parse(der);
            yield return crl.ThisUpdate;
            yield return crl.NextUpdate!.Value;
        }

        foreach (var certificate in collateral.TcbSigningCertificates.Concat(KnownIntermediates.IntelTcbSigning))
        {
            yield return new DateTimeOffset(certificate.NotBefore.ToUniversalTime());
            yield return new DateTimeOffset(certificate.NotAfter.ToUniversalTime());
        }
    }
}
