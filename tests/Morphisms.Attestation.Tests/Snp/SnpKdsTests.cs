using System.Net;
using Microsoft.Extensions.Time.Testing;
using Morphisms.Attestation.Abi.Snp;
using Morphisms.Attestation.Verify.Snp;

namespace Morphisms.Attestation.Tests.Snp;

/// <summary>The AMD KDS client, against a fake handler: these tests never touch the network.</summary>
public class SnpKdsTests
{
    private static readonly byte[] ChipId = Enumerable.Range(1, 64).Select(i => (byte)i).ToArray();

    [Fact]
    public void Vcek_url_names_product_chip_and_tcb()
    {
        var url = AmdKdsUrls.Vcek("Milan", ChipId, TcbVersion.FromParts(3, 0, 8, 115));

        Assert.Equal($"https://kdsintf.amd.com/vcek/v1/Milan/{Convert.ToHexStringLower(ChipId)}?blSPL=3&teeSPL=0&snpSPL=8&ucodeSPL=115", url.ToString());
    }

    [Fact]
    public void Turin_vcek_url_uses_eight_bytes_of_chip_id_and_the_fmc()
    {
        var url = AmdKdsUrls.Vcek("Turin", ChipId, TcbVersion.FromParts(1, 2, 3, 4, fmc: 5));

        Assert.Equal("https://kdsintf.amd.com/vcek/v1/Turin/0102030405060708?fmcSPL=5&blSPL=1&teeSPL=2&snpSPL=3&ucodeSPL=4", url.ToString());
    }

    [Fact]
    public void Chain_and_crl_urls_follow_the_signing_key()
    {
        Assert.Equal("https://kdsintf.amd.com/vcek/v1/Genoa/cert_chain", AmdKdsUrls.CertificateChain("Genoa", SnpSigningKey.Vcek).ToString());
        Assert.Equal("https://kdsintf.amd.com/vlek/v1/Milan/cert_chain", AmdKdsUrls.CertificateChain("milan", SnpSigningKey.Vlek).ToString());
        Assert.Equal("https://kdsintf.amd.com/vcek/v1/Turin/crl", AmdKdsUrls.Crl("Turin-B0", SnpSigningKey.Vcek).ToString());
        Assert.Equal("http://kds.test/vlek/v1/Milan/crl", AmdKdsUrls.Crl("Milan", SnpSigningKey.Vlek, new Uri("http://kds.test/")).ToString());
    }

    [Fact]
    public void Urls_refuse_unknown_products_and_masked_chips()
    {
        Assert.Throws<ArgumentException>(() => AmdKdsUrls.CertificateChain("../../evil", SnpSigningKey.Vcek));
        Assert.Throws<ArgumentException>(() => AmdKdsUrls.Vcek("Milan", new byte[64], default));
        Assert.Throws<ArgumentException>(() => AmdKdsUrls.Vcek("Milan", new byte[8], default));
    }

    [VectorFact]
    public async Task Fetched_endorsements_verify_the_report()
    {
        var handler = new FakeKds();
        handler.Add("/vcek/v1/Milan/", TestVectors.Read("snp", "trustee_milan_vcek.der"));
        handler.Add("/vcek/v1/Milan/cert_chain", SnpVectors.Root("amd_kds_cert_chain_vcek_milan.pem"));
        var report = SnpReport.Parse(SnpVectors.Report("trustee_milan_v2"));
        var source = new AmdKdsCertificateSource(new HttpClient(handler));

        var endorsements = await source.GetEndorsementsAsync(report, "Milan");
        var result = new SnpVerifier(SnpVectors.OptionsAt(SnpVectors.Gathered)).Verify(report, endorsements);

        Assert.True(result.Passed, string.Join("\n", result.Log.Failures));
        Assert.Contains(handler.Requests, r => r.StartsWith("/vcek/v1/Milan/c38427a30d4c", StringComparison.Ordinal) && r.EndsWith("?blSPL=3&teeSPL=0&snpSPL=8&ucodeSPL=115", StringComparison.Ordinal));
    }

    [VectorFact]
    public async Task Cache_fetches_each_item_once()
    {
        var handler = new FakeKds();
        handler.Add("/vcek/v1/Milan/", TestVectors.Read("snp", "trustee_milan_vcek.der"));
        handler.Add("/vcek/v1/Milan/cert_chain", SnpVectors.Root("amd_kds_cert_chain_vcek_milan.pem"));
        var time = new FakeTimeProvider(SnpVectors.Gathered);
        var source = new CachingSnpCertificateSource(new AmdKdsCertificateSource(new HttpClient(handler)), time);
        var report = SnpReport.Parse(SnpVectors.Report("trustee_milan_v2"));

        var tasks = Enumerable.Range(0, 8).Select(_ => source.GetEndorsementsAsync(report, "Milan")).ToList();
        await Task.WhenAll(tasks);
        await source.GetEndorsementsAsync(report, "Milan");
        Assert.Equal(2, handler.Requests.Count);

        time.Advance(TimeSpan.FromDays(2));
        await source.GetEndorsementsAsync(report, "Milan");
        Assert.Equal(3, handler.Requests.Count); // the chain expired, the VCEK did not
        Assert.Equal(2, handler.Requests.Count(r => r.EndsWith("cert_chain", StringComparison.Ordinal)));
    }

    [Fact]
    public async Task Crl_is_cached_until_its_next_update()
    {
        var fake = FakeAmd.Milan;
        var handler = new FakeKds();
        handler.Add("/vcek/v1/Milan/crl", fake.Crl(FakeAmd.Now, FakeAmd.Now.AddDays(7)));
        var time = new FakeTimeProvider(FakeAmd.Now);
        var source = new CachingSnpCertificateSource(new AmdKdsCertificateSource(new HttpClient(handler)), time);

        await source.GetCrlAsync("Milan", SnpSigningKey.Vcek);
        time.Advance(TimeSpan.FromDays(6));
        await source.GetCrlAsync("Milan", SnpSigningKey.Vcek);
        Assert.Single(handler.Requests);

        time.Advance(TimeSpan.FromDays(2));
        var crl = await source.GetCrlAsync("Milan", SnpSigningKey.Vcek);
        Assert.Equal(2, handler.Requests.Count);
        Assert.Equal(FakeAmd.Now.AddDays(7), crl.NextUpdate);
    }

    [Fact]
    public async Task Failures_are_reported_and_not_cached()
    {
        var handler = new FakeKds { Status = HttpStatusCode.TooManyRequests };
        var source = new CachingSnpCertificateSource(new AmdKdsCertificateSource(new HttpClient(handler)));

        var e = await Assert.ThrowsAsync<HttpRequestException>(() => source.GetCertificateChainAsync("Milan", SnpSigningKey.Vcek));
        Assert.Contains("rate limit", e.Message);

        handler.Status = HttpStatusCode.NotFound;
        e = await Assert.ThrowsAsync<HttpRequestException>(() => source.GetVcekAsync("Milan", ChipId, default));
        Assert.Contains("404", e.Message);
        await Assert.ThrowsAsync<HttpRequestException>(() => source.GetVcekAsync("Milan", ChipId, default));
        Assert.Equal(3, handler.Requests.Count);
    }

    [Fact]
    public async Task Vlek_reports_cannot_be_endorsed_from_kds()
    {
        var bytes = SnpReportTests.MinimalReport(3);
        bytes[0x48] = 1 << 2;
        var source = new AmdKdsCertificateSource(new HttpClient(new FakeKds()));

        await Assert.ThrowsAsync<NotSupportedException>(() => source.GetEndorsementsAsync(SnpReport.Parse(bytes), "Milan"));
    }

    /// <summary>Answers by longest matching path prefix and records every request path.</summary>
    private sealed class FakeKds : HttpMessageHandler
    {
        private readonly List<(string Prefix, byte[] Body)> _routes = [];

        public List<string> Requests { get; } = [];

        public HttpStatusCode Status { get; set; } = HttpStatusCode.OK;

        public void Add(string prefix, byte[] body) => _routes.Add((prefix, body));

        protected override Task<HttpResponseMessage> SendAsync(HttpRequestMessage request, CancellationToken cancellationToken)
        {
            var path = request.RequestUri!.PathAndQuery;
            lock (Requests)
            {
                Requests.Add(path);
            }

            Assert.Equal("kdsintf.amd.com", request.RequestUri.Host);
            var route = _routes.Where(r => path.StartsWith(r.Prefix, StringComparison.Ordinal)).OrderByDescending(r => r.Prefix.Length).FirstOrDefault();
            if (Status != HttpStatusCode.OK || route.Body is null)
            {
                return Task.FromResult(new HttpResponseMessage(Status == HttpStatusCode.OK ? HttpStatusCode.NotFound : Status));
            }

            return Task.FromResult(new HttpResponseMessage(HttpStatusCode.OK) { Content = new ByteArrayContent(route.Body) });
        }
    }
}
