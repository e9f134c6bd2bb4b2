using Microsoft.Extensions.Time.Testing;
using Morphisms.Attestation.Abi.Dcap;
using Morphisms.Attestation.Collateral;
using Morphisms.Attestation.Trust;
using Morphisms.Attestation.Verify.Dcap;

namespace Morphisms.Attestation.Tests.Dcap;

public class QuoteSignatureTests
{
    /// <summary>Inside every PCK certificate's validity in the vectors (latest start 2026-01-27, earliest end 2029-09-20).</summary>
    internal static readonly DateTimeOffset WithinPckValidity = new(2027, 1, 1, 0, 0, 0, TimeSpan.Zero);

    internal static readonly string[] AuthenticityChecks =
    [
        QuoteSignatureVerifier.QuoteSignatureCheck, QuoteSignatureVerifier.QeReportSignatureCheck, QuoteSignatureVerifier.QeReportDataCheck,
        PckChainVerifier.Check, PckChainVerifier.ExtensionsCheck, PckRevocationChecker.Check,
    ];

    [VectorTheory]
    [MemberData(nameof(ExpectedQuotes.Files), MemberType = typeof(ExpectedQuotes))]
    public void Signatures_binding_and_pck_chain_verify_for_every_quote(string file)
    {
        var expected = ExpectedQuotes.Get(file);
        var quote = DcapQuote.Parse(expected.Read());
        var log = new CheckLog();

        Assert.True(QuoteSignatureVerifier.VerifyQuoteSignature(quote, log));
        Assert.True(QuoteSignatureVerifier.VerifyQeReportData(quote, log));
        var chain = PckChainVerifier.Verify(quote.Signature.CertificationData, TrustAnchors.Vendor, WithinPckValidity, log);
        Assert.True(QuoteSignatureVerifier.VerifyQeReportSignature(quote, chain, log));

        Assert.Empty(log.Failures);
        Assert.Same(TrustAnchors.Vendor.Intel[0], chain.Root);
        Assert.Equal(Enum.Parse<PckCaType>(expected.PckCa), chain.CaType);
        Assert.Equal(expected.Fmspc, chain.Extensions!.FmspcHex);
        Assert.False(chain.Simulated);
    }

    [VectorTheory]
    [MemberData(nameof(ExpectedQuotes.Files), MemberType = typeof(ExpectedQuotes))]
    public async Task Without_collateral_a_quote_is_rejected_naming_each_missing_item_and_claims_are_still_returned(string file)
    {
        var expected = ExpectedQuotes.Get(file);
        var options = new DcapVerifyOptions { Time = new FakeTimeProvider(WithinPckValidity) };

        var verification = await DcapVerifier.VerifyAsync(expected.Read(), options);

        Assert.False(verification.Verified);
        var reasons = verification.Log.Failures.Select(f => f.Reason).ToList();
        Assert.Contains("collateral: TCB info missing", reasons);
        Assert.Contains("collateral: QE identity missing", reasons);
        Assert.Contains("collateral: PCK CRL missing", reasons);
        Assert.Contains("collateral: root CA CRL missing", reasons);
        Assert.DoesNotContain(verification.Log.Failures, f => AuthenticityChecks.Contains(f.Check));
        Assert.Null(verification.Collateral);
        Assert.Null(verification.Tcb!.Status);

        var result = verification.ToResult();
        Assert.Equal(AttestationStatus.Contraindicated, result.Status);
        Assert.Null(result.TcbStatus);
        Assert.Equal(expected.Sgx?.MrEnclave ?? expected.Tdx!.MrTd, Hex.Of(result.Claims.Measurement));
        Assert.Equal(expected.ReportData, Hex.Of(result.Claims.ReportData));
        var claims = Assert.IsAssignableFrom<DcapClaims>(result.Claims);
        Assert.Equal(expected.Fmspc, claims.Pck!.FmspcHex);
        Assert.Equal(Enum.Parse<PckCaType>(expected.PckCa), claims.PckCa);
    }

    [VectorFact]
    public async Task A_collateral_source_with_nothing_for_the_platform_is_named()
    {
        var options = new DcapVerifyOptions
        {
            Time = new FakeTimeProvider(WithinPckValidity),
            CollateralSource = new EmptySource(),
        };

        var verification = await DcapVerifier.VerifyAsync(TestVectors.Read("sgx", "automata_icelake_00606a000000_v3_quote.bin"), options);

        Assert.Contains(verification.Log.Failures, f => f.Check == "dcap.collateral" && f.Reason.Contains("FMSPC 00606a000000 (Platform CA)"));
        Assert.Contains(verification.Log.Failures, f => f.Reason == "collateral: TCB info missing");
    }

    [VectorFact]
    public void The_chain_is_rejected_outside_the_pck_certificates_validity()
    {
        var quote = DcapQuote.Parse(TestVectors.Read("sgx", "automata_icelake_00606a000000_v3_quote.bin"));
        foreach (var time in new[] { new DateTimeOffset(2024, 3, 6, 0, 0, 0, TimeSpan.Zero), new DateTimeOffset(2031, 3, 8, 0, 0, 0, TimeSpan.Zero) })
        {
            var log = new CheckLog();
            PckChainVerifier.Verify(quote.Signature.CertificationData, TrustAnchors.Vendor, time, log);
            var failure = Assert.Single(log.Failures);
            Assert.Equal(PckChainVerifier.Check, failure.Check);
            Assert.StartsWith("PCK certificate is not valid at", failure.Reason);
        }
    }

    [VectorFact]
    public void A_chain_is_only_trusted_through_the_given_anchors()
    {
        var quote = DcapQuote.Parse(TestVectors.Read("tdx", "trustee_spr_50806f000000_v4_quote.bin"));
        var amdOnly = new TrustAnchors(TrustAnchors.Vendor.Amd, []);
        var log = new CheckLog();

        var chain = PckChainVerifier.Verify(quote.Signature.CertificationData, amdOnly, WithinPckValidity, log);

        Assert.Null(chain.Root);
        Assert.Contains(log.Failures, f => f.Check == PckChainVerifier.Check && f.Reason.Contains("is not issued by a trusted Intel root"));
    }

    [VectorFact]
    public void Repeat_chain_verifications_come_from_the_cache()
    {
        var quote = DcapQuote.Parse(TestVectors.Read("sgx", "phala_rocketlake_00a067110000_v3_quote.bin"));
        var first = PckChainVerifier.Verify(quote.Signature.CertificationData, TrustAnchors.Vendor, WithinPckValidity, new CheckLog());
        var second = PckChainVerifier.Verify(quote.Signature.CertificationData, TrustAnchors.Vendor, WithinPckValidity.AddDays(30), new CheckLog());
        Assert.Same(first, second);
    }

    [VectorFact]
    public void Certification_data_without_a_pck_chain_is_a_chain_failure()
    {
        var log = new CheckLog();
        var chain = PckChainVerifier.Verify(new CertificationData(3, new byte[10]), TrustAnchors.Vendor, WithinPckValidity, log);
        Assert.Null(chain.Leaf);
        Assert.Contains("certification data type 3 carries no PCK certificate chain", Assert.Single(log.Failures).Reason);

        var quote = DcapQuote.Parse(TestVectors.Read("sgx", "phala_rocketlake_00a067110000_v3_quote.bin"));
        log = new CheckLog();
        Assert.False(QuoteSignatureVerifier.VerifyQeReportSignature(quote, chain, log));
        Assert.Equal(QuoteSignatureVerifier.QeReportSignatureCheck, Assert.Single(log.Failures).Check);
    }

    private sealed class EmptySource : ICollateralSource
    {
        public ValueTask<DcapCollateral?> GetDcapCollateralAsync(DcapCollateralRequest request, CancellationToken cancellationToken = default) =>
            ValueTask.FromResult<DcapCollateral?>(null);
    }
}
