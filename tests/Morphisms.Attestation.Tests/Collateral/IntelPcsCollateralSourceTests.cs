using System.Net;
using Morphisms.Attestation.Collateral;
using Morphisms.Attestation.Trust;
using Morphisms.Attestation.Verify.Dcap;

namespace Morphisms.Attestation.Tests.Collateral;

public class IntelPcsCollateralSourceTests
{
    /// <summary>Answers from a table of URL → response and records every URL asked for; never touches a network.</summary>
    private sealed class FakePcs : HttpMessageHandler
    {
        private readonly Dictionary<string, Func<HttpResponseMessage>> _routes = new(StringComparer.Ordinal);

        public List<string> Requested { get; } = [];

        public void Serve(string url, byte[] body, params (string Name, string Value)[] headers) => _routes[url] = () =>
        {
            var response = new HttpResponseMessage(HttpStatusCode.OK) { Content = new ByteArrayContent(body) };
            foreach (var (name, value) in headers)
            {
                response.Headers.TryAddWithoutValidation(name, value);
            }

            return response;
        };

        public void Fail(string url, HttpStatusCode status) => _routes[url] = () => new HttpResponseMessage(status);

        protected override Task<HttpResponseMessage> SendAsync(HttpRequestMessage request, CancellationToken cancellationToken)
        {
            var url = request.RequestUri!.ToString();
            Requested.Add(url);
            return Task.FromResult(_routes.TryGetValue(url, out var route) ? route() : new HttpResponseMessage(HttpStatusCode.NotFound));
        }
    }

    private const string Pcs = "https://api.trustedservices.intel.com/";
    private const string RootCrlUrl = "https://certificates.trustedservices.intel.com/IntelSGXRootCA.der";

    private static string SigningChainHeader() => Uri.EscapeDataString(
        File.ReadAllText(CollateralVectors.Path("roots/intel_sgx_tcb_signing_2018-2025.pem"))
        + File.ReadAllText(CollateralVectors.Path("roots/intel_sgx_root_ca.pem")));

    [VectorFact]
    public async Task Sgx_collateral_comes_from_the_v4_endpoints_with_the_chain_from_the_headers()
    {
        var pcs = new FakePcs();
        pcs.Serve($"{Pcs}sgx/certification/v4/tcb?fmspc=00606A000000", Vector("sgx/automata_sgx_tcbinfo_v3_00606a000000_20250815.json"), ("TCB-Info-Issuer-Chain", SigningChainHeader()));
        pcs.Serve($"{Pcs}sgx/certification/v4/qe/identity", Vector("sgx/automata_sgx_qe_identity_20250815.json"), ("SGX-Enclave-Identity-Issuer-Chain", SigningChainHeader()));
        pcs.Serve($"{Pcs}sgx/certification/v4/pckcrl?ca=platform&encoding=der", Vector("sgx/automata_pck_platform_crl_20250815.der"), ("SGX-PCK-CRL-Issuer-Chain", "ignored"));
        pcs.Serve(RootCrlUrl, Vector("sgx/automata_root_ca_crl_20250320.der"));
        var source = new IntelPcsCollateralSource(new HttpClient(pcs));

        var collateral = await source.GetDcapCollateralAsync(new DcapCollateralRequest(TeeType.Sgx, "00606a000000", PckCaType.Platform));

        Assert.Equal(4, pcs.Requested.Count);
        Assert.Equal(2, collateral!.TcbSigningCertificates.Count);
        Assert.Equal(Pcs, collateral.Origin);
        var log = new CheckLog();
        var verified = CollateralVerifier.Verify(collateral, TeeType.Sgx, TrustAnchors.Vendor, new DateTimeOffset(2025, 8, 15, 5, 45, 0, TimeSpan.Zero), log);
        Assert.Empty(log.Failures);
        Assert.Equal("00606a000000", verified.TcbInfo!.FmspcHex);
    }

    [VectorFact]
    public async Task Tdx_collateral_uses_the_tdx_paths_and_a_pccs_base_address()
    {
        const string pccs = "https://pccs.internal:8081/";
        var pcs = new FakePcs();
        pcs.Serve($"{pccs}tdx/certification/v4/tcb?fmspc=00806F050000&update=early", Vector("tdx/automata_tdx_tcbinfo_00806f050000_20251019.json"));
        pcs.Serve($"{pccs}tdx/certification/v4/qe/identity?update=early", Vector("tdx/automata_td_qe_identity_20251013.json"));
        pcs.Serve($"{pccs}sgx/certification/v4/pckcrl?ca=processor&encoding=der", Vector("tdx/automata_pck_platform_crl_20251013.der"));
        var source = new IntelPcsCollateralSource(new HttpClient(pcs),
            new IntelPcsOptions { BaseAddress = new Uri(pccs), RootCaCrlAddress = null, Update = "early" });

        var collateral = await source.GetDcapCollateralAsync(new DcapCollateralRequest(TeeType.Tdx, "00806f050000", PckCaType.Processor));

        Assert.Equal(3, pcs.Requested.Count);
        Assert.Equal("TDX", TcbInfo.Parse(collateral!.TcbInfo!.Body).Id);
        Assert.Equal("TD_QE", EnclaveIdentity.Parse(collateral.QeIdentity!.Body).Id);
        Assert.NotNull(collateral.PckCrl);
        Assert.Null(collateral.RootCaCrl);
        Assert.Empty(collateral.TcbSigningCertificates);
    }

    [Fact]
    public async Task An_unknown_fmspc_leaves_the_tcb_info_missing()
    {
        var source = new IntelPcsCollateralSource(new HttpClient(new FakePcs()));

        var collateral = await source.GetDcapCollateralAsync(new DcapCollateralRequest(TeeType.Sgx, "112233445566", PckCaType.Platform));
        var log = new CheckLog();
        CollateralVerifier.Verify(collateral!, TeeType.Sgx, TrustAnchors.Vendor, DateTimeOffset.UnixEpoch, log);

        Assert.Null(collateral!.TcbInfo);
        Assert.Contains(log.Failures, f => f.Reason == "collateral: TCB info missing");
    }

    [Fact]
    public async Task A_server_error_is_an_exception_naming_the_url()
    {
        var pcs = new FakePcs();
        pcs.Fail($"{Pcs}sgx/certification/v4/qe/identity", HttpStatusCode.ServiceUnavailable);
        var source = new IntelPcsCollateralSource(new HttpClient(pcs));

        var e = await Assert.ThrowsAsync<HttpRequestException>(async () =>
            await source.GetDcapCollateralAsync(new DcapCollateralRequest(TeeType.Sgx, "00606a000000", PckCaType.Platform)));

        Assert.Contains("qe/identity answered 503", e.Message);
    }

    [Fact]
    public async Task An_oversized_answer_is_refused()
    {
        var pcs = new FakePcs();
        pcs.Serve($"{Pcs}sgx/certification/v4/tcb?fmspc=00606A000000", new byte[4096]);
        var source = new IntelPcsCollateralSource(new HttpClient(pcs), new IntelPcsOptions { MaxResponseBytes = 1024 });

        var e = await Assert.ThrowsAsync<EvidenceFormatException>(async () =>
            await source.GetDcapCollateralAsync(new DcapCollateralRequest(TeeType.Sgx, "00606a000000", PckCaType.Platform)));

        Assert.Contains("1024-byte limit", e.Message);
    }

    [Fact]
    public async Task A_garbage_answer_names_the_url()
    {
        var pcs = new FakePcs();
        pcs.Serve($"{Pcs}sgx/certification/v4/tcb?fmspc=00606A000000", "<html>maintenance</html>"u8.ToArray());
        var source = new IntelPcsCollateralSource(new HttpClient(pcs));

        var e = await Assert.ThrowsAsync<EvidenceFormatException>(async () =>
            await source.GetDcapCollateralAsync(new DcapCollateralRequest(TeeType.Sgx, "00606a000000", PckCaType.Platform)));

        Assert.StartsWith($"{Pcs}sgx/certification/v4/tcb?fmspc=00606A000000: ", e.Message);
    }

    [Theory]
    [InlineData("00606a00000")]
    [InlineData("00606a00000g")]
    [InlineData("00606a000000&x=1")]
    public async Task A_malformed_fmspc_never_reaches_the_network(string fmspc)
    {
        var pcs = new FakePcs();
        var source = new IntelPcsCollateralSource(new HttpClient(pcs));

        await Assert.ThrowsAsync<ArgumentException>(async () =>
            await source.GetDcapCollateralAsync(new DcapCollateralRequest(TeeType.Sgx, fmspc, PckCaType.Platform)));
        Assert.Empty(pcs.Requested);
    }

    private static byte[] Vector(string relative) => File.ReadAllBytes(CollateralVectors.Path(relative));
}
