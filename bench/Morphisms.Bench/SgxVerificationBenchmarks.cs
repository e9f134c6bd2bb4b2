using System.Security.Cryptography.X509Certificates;
using System.Globalization;
using System.Security.Cryptography;
using BenchmarkDotNet.Attributes;
using Microsoft.Extensions.Time.Testing;
using Morphisms.Attestation.Abi.Dcap;
using Morphisms.Attestation.Collateral;
using Morphisms.Attestation.Verify.Dcap;

namespace Morphisms.Bench;

/// <summary>
/// SGX DCAP quote verification with collateral and PCK chain cached, against the floor: the two
/// ECDSA P-256 verifications every quote needs (quote signature, QE report signature).
/// Target: ≥ 50 % of the two-verify rate.
/// </summary>
[MemoryDiagnoser]
public class SgxVerificationBenchmarks
{
    private byte[] _quote = [];
    private DcapVerifyOptions _options = null!;
    private ECDsa _attestationKey = null!;
    private ECDsa _pckKey = null!;
    private byte[] _signedRegion = [];
    private byte[] _quoteSignature = [];
    private byte[] _qeReport = [];
    private byte[] _qeSignature = [];

    [GlobalSetup]
    public async Task Setup()
    {
        _quote = File.ReadAllBytes(BenchVectors.Path("sgx", "automata_icelake_00606a000000_v3_quote.bin"));
        var collateral = await OfflineCollateralStore.FromFiles(new CollateralFiles
        {
            TcbInfo = BenchVectors.Path("sgx", "automata_sgx_tcbinfo_v3_00606a000000_20250815.json"),
            QeIdentity = BenchVectors.Path("sgx", "automata_sgx_qe_identity_20250815.json"),
            PckCrl = BenchVectors.Path("sgx", "automata_pck_platform_crl_20250815.der"),
            RootCaCrl = BenchVectors.Path("sgx", "automata_root_ca_crl_20250320.der"),
        }).GetDcapCollateralAsync(new DcapCollateralRequest(Morphisms.Attestation.TeeType.Sgx, "00606a000000", PckCaType.Platform));
        var time = new FakeTimeProvider(DateTimeOffset.Parse("2025-08-15T05:45:00Z", CultureInfo.InvariantCulture));
        _options = new DcapVerifyOptions { Collateral = collateral, Time = time };
        var warm = await DcapVerifier.VerifyAsync(_quote, _options);
        if (!warm.Log.Passed)
        {
            throw new InvalidOperationException("benchmark quote does not verify: " + string.Join("; ", warm.Log.Failures));
        }

        var quote = DcapQuote.Parse(_quote);
        _signedRegion = quote.SignedRegion.ToArray();
        _quoteSignature = quote.Signature.QuoteSignature.ToArray();
        _qeReport = quote.Signature.QeReport.Raw.ToArray();
        _qeSignature = quote.Signature.QeReportSignature.ToArray();
        var key = quote.Signature.AttestationKey.ToArray();
        _attestationKey = ECDsa.Create(new ECParameters { Curve = ECCurve.NamedCurves.nistP256, Q = new ECPoint { X = key[..32], Y = key[32..] } });
        _pckKey = PckCertificateChainPem.Parse(quote.Signature.CertificationData.Data.Span)[0].GetECDsaPublicKey()!;
    }

    [Benchmark(Baseline = true, Description = "two bare ECDSA P-256 verifies")]
    public bool TwoBareEcdsaP256() =>
        _attestationKey.VerifyData(_signedRegion, _quoteSignature, HashAlgorithmName.SHA256)
        & _pckKey.VerifyData(_qeReport, _qeSignature, HashAlgorithmName.SHA256);

    [Benchmark(Description = "SGX quote verify (collateral cached)")]
    public async Task<bool> CachedSgxVerification() => (await DcapVerifier.VerifyAsync(_quote, _options)).Log.Passed;
}
