using System.Security.Cryptography.X509Certificates;
using Microsoft.Extensions.Time.Testing;
using Morphisms.Attestation.Abi.Dcap;
using Morphisms.Attestation.Collateral;
using Morphisms.Attestation.Trust;
using Morphisms.Attestation.Verify.Dcap;
using Morphisms.Testing;

namespace Morphisms.Attestation.Tests.Dcap;

/// <summary>Trust decisions on quotes whose PKI the test controls (see <see cref="SyntheticQuote"/>).</summary>
public class ChainTrustTests
{
    private static readonly DateTimeOffset At = new(2025, 6, 1, 0, 0, 0, TimeSpan.Zero);

    [VectorFact]
    public async Task A_well_formed_quote_under_a_foreign_root_is_rejected_even_though_every_signature_verifies()
    {
        using var pki = new SyntheticQuote();
        var verification = await Verify(pki.Build(), TrustAnchors.Vendor);

        Assert.Contains(verification.Log.Failures, f => f.Check == PckChainVerifier.Check && f.Reason.Contains("is not issued by a trusted Intel root"));
        Assert.DoesNotContain(verification.Log.Failures, f => f.Check is QuoteSignatureVerifier.QuoteSignatureCheck
            or QuoteSignatureVerifier.QeReportSignatureCheck or QuoteSignatureVerifier.QeReportDataCheck);
        Assert.Null(verification.PckChain.Root);
    }

    [VectorFact]
    public async Task A_root_named_like_intels_in_the_quote_is_not_trusted_for_its_name()
    {
        using var pki = new SyntheticQuote("CN=Intel SGX Root CA, O=Intel Corporation, L=Santa Clara, S=CA, C=US");
        var verification = await Verify(pki.Build(), TrustAnchors.Vendor);

        Assert.Contains(verification.Log.Failures, f => f.Check == PckChainVerifier.Check);
        Assert.Null(verification.PckChain.Root);
    }

    [VectorFact]
    public async Task The_embedded_root_must_be_the_anchor_even_when_the_ca_verifies_under_the_anchor()
    {
        using var pki = new SyntheticQuote();
        // Same subject as the trusted root, different key: the chain verifies through the anchor, but
        // the quote carries a root that is not the anchor.
        using var other = new SyntheticQuote(pki.Root.Subject);
        var verification = await Verify(pki.Build([pki.Leaf, pki.Ca, other.Root]), pki.SimulatedAnchors);

        Assert.Contains(verification.Log.Failures, f => f.Check == PckChainVerifier.Check && f.Reason.Contains("differs from the trusted Intel root"));
        Assert.NotNull(verification.PckChain.Root);
    }

    [VectorFact]
    public async Task A_chain_without_its_root_verifies_through_the_anchor()
    {
        using var pki = new SyntheticQuote();
        var verification = await Verify(pki.Build([pki.Leaf, pki.Ca]), pki.SimulatedAnchors);

        Assert.DoesNotContain(verification.Log.Failures, f => f.Check == PckChainVerifier.Check);
        Assert.True(verification.PckChain.Simulated);
    }

    [VectorFact]
    public async Task A_chain_missing_its_pck_ca_is_named()
    {
        using var pki = new SyntheticQuote();
        var verification = await Verify(pki.Build([pki.Leaf, pki.Root]), pki.SimulatedAnchors);

        Assert.Contains(verification.Log.Failures, f => f.Check == PckChainVerifier.Check && f.Reason.Contains("is not in the chain"));
        Assert.NotNull(verification.Claims.Pck);
    }

    [VectorFact]
    public async Task Evidence_under_a_simulated_root_is_flagged_simulated_in_claims_and_result()
    {
        using var pki = new SyntheticQuote();
        var verification = await Verify(pki.Build(), pki.SimulatedAnchors);

        Assert.DoesNotContain(verification.Log.Failures, f => QuoteSignatureTests.AuthenticityChecks.Contains(f.Check));
        Assert.True(verification.Claims.Simulated);
        var result = verification.ToResult();
        Assert.True(result.Simulated);
        Assert.Contains(result.Warnings, w => w.Contains("simulated"));
    }

    [VectorFact]
    public async Task An_sgx_v4_quote_with_qe_report_certification_data_verifies()
    {
        using var pki = new SyntheticQuote();
        var bytes = pki.Build(version: 4);
        var quote = DcapQuote.Parse(bytes);
        Assert.Equal(4, quote.Header.Version);
        Assert.Equal(TeeType.Sgx, quote.Tee);
        Assert.Equal((ushort)6, quote.Signature.OuterCertificationDataType);

        var verification = await Verify(bytes, pki.SimulatedAnchors);

        Assert.DoesNotContain(verification.Log.Failures, f => QuoteSignatureTests.AuthenticityChecks.Contains(f.Check));
        Assert.IsType<SgxClaims>(verification.Claims);
    }

    [VectorFact]
    public async Task A_revoked_pck_certificate_is_rejected()
    {
        using var pki = new SyntheticQuote();
        var collateral = new DcapCollateral { PckCrl = pki.Crl(null, At.AddDays(-1), pki.Leaf), RootCaCrl = pki.RootCrl(At.AddDays(-1)) };

        var verification = await Verify(pki.Build(), pki.SimulatedAnchors, collateral);

        var failure = Assert.Single(verification.Log.Failures, f => f.Check == PckRevocationChecker.Check);
        Assert.Contains("PCK certificate", failure.Reason);
        Assert.DoesNotContain(verification.Log.Failures, f => f.Check is CollateralVerifier.PckCrlCheck or CollateralVerifier.RootCrlCheck);
    }

    [VectorFact]
    public async Task A_revoked_pck_ca_is_rejected()
    {
        using var pki = new SyntheticQuote();
        var collateral = new DcapCollateral { PckCrl = pki.Crl(null, At.AddDays(-1)), RootCaCrl = pki.RootCrl(At.AddDays(-1), pki.Ca) };

        var verification = await Verify(pki.Build(), pki.SimulatedAnchors, collateral);

        var failure = Assert.Single(verification.Log.Failures, f => f.Check == PckRevocationChecker.Check);
        Assert.Contains("PCK CA certificate", failure.Reason);
    }

    [VectorFact]
    public async Task Unrevoked_certificates_pass_and_a_pck_crl_from_another_issuer_is_refused()
    {
        using var pki = new SyntheticQuote();
        using var other = new SyntheticQuote(pki.Root.Subject);
        var good = new DcapCollateral { PckCrl = pki.Crl(null, At.AddDays(-1)), RootCaCrl = pki.RootCrl(At.AddDays(-1)) };
        var verification = await Verify(pki.Build(), pki.SimulatedAnchors, good);
        Assert.DoesNotContain(verification.Log.Failures, f => f.Check is PckRevocationChecker.Check or CollateralVerifier.PckCrlCheck or CollateralVerifier.RootCrlCheck);

        // Same issuer name, other key: the CRL is not the PCK CA's.
        var forged = good with { PckCrl = other.Crl(null, At.AddDays(-1)) };
        verification = await Verify(pki.Build(), pki.SimulatedAnchors, forged);
        Assert.Contains(verification.Log.Failures, f => f.Check == CollateralVerifier.PckCrlCheck && f.Reason.Contains("not signed by this quote's PCK CA"));
    }

    [VectorFact]
    public async Task A_pck_certificate_or_ca_on_a_curve_no_library_knows_fails_the_chain_instead_of_throwing()
    {
        using var pki = new SyntheticQuote();
        using var leaf = X509CertificateLoader.LoadCertificate(TestCertificates.OnUnknownCurve(pki.Leaf.RawData));
        var verification = await Verify(pki.Build([leaf, pki.Ca, pki.Root]), pki.SimulatedAnchors);

        Assert.Contains(verification.Log.Failures, f => f.Check == PckChainVerifier.Check && f.Reason.Contains("not ECDSA P-256"));
        Assert.Contains(verification.Log.Failures, f => f.Check == QuoteSignatureVerifier.QeReportSignatureCheck);

        using var ca = X509CertificateLoader.LoadCertificate(TestCertificates.OnUnknownCurve(pki.Ca.RawData));
        verification = await Verify(pki.Build([pki.Leaf, ca, pki.Root]), pki.SimulatedAnchors);

        Assert.Contains(verification.Log.Failures, f => f.Check == PckChainVerifier.Check && f.Reason.Contains("signature"));
    }

    [VectorFact]
    public async Task No_collateral_is_fetched_for_a_chain_that_does_not_reach_a_trusted_root()
    {
        // The leaf's FMSPC is whatever its maker wrote; asking Intel PCS about it would let anyone drive fetches.
        using var pki = new SyntheticQuote();
        var source = new CountingSource();
        var verification = await DcapVerifier.VerifyAsync(pki.Build(), new DcapVerifyOptions { Anchors = TrustAnchors.Vendor, Time = new FakeTimeProvider(At), CollateralSource = source });

        Assert.Equal(0, source.Calls);
        Assert.Equal(PckChainVerifier.Check, verification.Log.Failures[0].Check);
        Assert.Contains("is not issued by a trusted Intel root", verification.Log.Failures[0].Reason);
        Assert.Contains(verification.Log.Failures, f => f.Check == "dcap.collateral" && f.Reason.Contains("does not verify to a trusted Intel root"));
        Assert.Null(verification.Collateral);

        // A trusted PCK CA with a leaf it did not sign is no better.
        using var forger = new SyntheticQuote();
        verification = await DcapVerifier.VerifyAsync(pki.Build([forger.Leaf, pki.Ca]), new DcapVerifyOptions { Anchors = pki.SimulatedAnchors, Time = new FakeTimeProvider(At), CollateralSource = source });

        Assert.Equal(0, source.Calls);
        Assert.NotNull(verification.PckChain.Root);
        Assert.Contains(verification.Log.Failures, f => f.Check == PckChainVerifier.Check && f.Reason.Contains("signature"));

        // The same quote under an anchor that trusts its root is asked about.
        await DcapVerifier.VerifyAsync(pki.Build(), new DcapVerifyOptions { Anchors = pki.SimulatedAnchors, Time = new FakeTimeProvider(At), CollateralSource = source });
        Assert.Equal(1, source.Calls);
    }

    private sealed class CountingSource : ICollateralSource
    {
        public int Calls { get; private set; }

        public ValueTask<DcapCollateral?> GetDcapCollateralAsync(DcapCollateralRequest request, CancellationToken cancellationToken = default)
        {
            Calls++;
            return ValueTask.FromResult<DcapCollateral?>(null);
        }
    }

    private static ValueTask<DcapVerification> Verify(byte[] quote, TrustAnchors anchors, DcapCollateral? collateral = null) =>
        DcapVerifier.VerifyAsync(quote, new DcapVerifyOptions { Anchors = anchors, Time = new FakeTimeProvider(At), Collateral = collateral });
}
