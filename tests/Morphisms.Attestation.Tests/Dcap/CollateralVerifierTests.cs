using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;
using Morphisms.Attestation.Collateral;
using Morphisms.Attestation.Tests.Collateral;
using Morphisms.Attestation.Trust;
using Morphisms.Attestation.Verify.Dcap;

namespace Morphisms.Attestation.Tests.Dcap;

public class CollateralVerifierTests
{
    /// <summary>The day the vectors were gathered; nearly all Intel collateral in them had expired by then.</summary>
    private static readonly DateTimeOffset GatheredAt = new(2026, 11, 22, 0, 0, 0, TimeSpan.Zero);

    [VectorTheory]
    [MemberData(nameof(CollateralVectors.Names), MemberType = typeof(CollateralVectors))]
    public void Every_collateral_set_verifies_at_its_evaluation_time(string name)
    {
        var set = CollateralVectors.Get(name);
        var log = new CheckLog();

        var verified = CollateralVerifier.Verify(set.Load(), set.Tee, TrustAnchors.Vendor, set.At, log);

        // The only failures allowed are the items the README says do not exist for that date.
        var reasons = log.Failures.Select(f => f.Reason).ToList();
        Assert.Equal(set.Missing.Select(m => $"collateral: {m} missing").Order(), reasons.Order());
        Assert.NotNull(verified.TcbInfo);
        Assert.Equal(set.Tee, verified.TcbInfo.Tee);
        Assert.NotNull(verified.TcbInfoSigner);
        Assert.Contains("Intel SGX TCB Signing", verified.TcbInfoSigner.Subject);
        Assert.Equal(set.Missing.Contains("QE identity"), verified.QeIdentity is null);
        Assert.Equal(set.Missing.Contains("PCK CRL"), verified.PckCrl is null);
        Assert.Equal(set.Missing.Contains("root CA CRL"), verified.RootCaCrl is null);
        Assert.False(verified.Simulated);
    }

    [VectorFact]
    public void Collateral_issued_after_may_2025_needs_the_reissued_tcb_signing_certificate()
    {
        var early = CollateralVectors.Get("sgx-icelake-dcaprs-v2");
        var late = CollateralVectors.Get("sgx-icelake-automata");

        var earlyResult = CollateralVerifier.Verify(early.Load(), TeeType.Sgx, TrustAnchors.Vendor, early.At, new CheckLog());
        var lateResult = CollateralVerifier.Verify(late.Load(), TeeType.Sgx, TrustAnchors.Vendor, late.At, new CheckLog());

        Assert.Equal(new DateTime(2025, 5, 21, 10, 50, 10, DateTimeKind.Utc), earlyResult.TcbInfoSigner!.NotAfter.ToUniversalTime());
        Assert.Equal(new DateTime(2032, 5, 6, 9, 25, 0, DateTimeKind.Utc), lateResult.TcbInfoSigner!.NotAfter.ToUniversalTime());
    }

    [VectorTheory]
    [MemberData(nameof(CollateralVectors.Names), MemberType = typeof(CollateralVectors))]
    public void Every_collateral_set_is_expired_on_the_day_the_vectors_were_gathered(string name)
    {
        var set = CollateralVectors.Get(name);
        var collateral = set.Load();
        var log = new CheckLog();

        var verified = CollateralVerifier.Verify(collateral, set.Tee, TrustAnchors.Vendor, GatheredAt, log);

        var tcbFailure = Assert.Single(log.Failures, f => f.Check == CollateralVerifier.TcbInfoCheck && f.Reason.Contains("expired"));
        Assert.Contains("TCB info expired: nextUpdate", tcbFailure.Reason);
        Assert.Contains(verified.TcbInfo!.NextUpdate.ToString("yyyy-MM-dd'T'HH:mm:ss'Z'"), tcbFailure.Reason);
        if (collateral.QeIdentity is not null)
        {
            Assert.Contains(log.Failures, f => f.Check == CollateralVerifier.QeIdentityCheck && f.Reason.StartsWith("QE identity expired: nextUpdate"));
        }

        if (collateral.PckCrl is not null)
        {
            Assert.Contains(log.Failures, f => f.Check == CollateralVerifier.PckCrlCheck && f.Reason.StartsWith("PCK CRL expired: nextUpdate"));
        }
    }

    [VectorFact]
    public void Collateral_before_its_issue_date_is_not_yet_valid()
    {
        // dcap-rs pins 2025-02-13T03:20:32Z, minutes before its TCB info and CRL were issued.
        var set = CollateralVectors.Get("sgx-icelake-dcaprs-v2");
        var log = new CheckLog();

        CollateralVerifier.Verify(set.Load(), TeeType.Sgx, TrustAnchors.Vendor, new DateTimeOffset(2025, 2, 13, 3, 20, 32, TimeSpan.Zero), log);

        Assert.Contains(log.Failures, f => f.Check == CollateralVerifier.TcbInfoCheck
            && f.Reason == "TCB info is not yet valid: issueDate 2025-02-13T03:29:42Z is after the evaluation time");
        Assert.Contains(log.Failures, f => f.Check == CollateralVerifier.PckCrlCheck && f.Reason.StartsWith("PCK CRL is not yet valid"));
    }

    [VectorTheory]
    [InlineData("sgx-icelake-automata")]
    [InlineData("tdx-spr-automata-2025-10")]
    [InlineData("sgx-rocketlake-phala")]
    [InlineData("sgx-rocketlake-dcaprs")]
    public void A_tampered_tcb_info_byte_fails_the_signature(string name)
    {
        var set = CollateralVectors.Get(name);
        var collateral = set.Load();
        var body = (byte[])collateral.TcbInfo!.Body.Clone();

        // Change the last digit of the first level's PCESVN: still well-formed JSON, and just what a forger wants.
        var offset = body.AsSpan().IndexOf("\"pcesvn\":"u8) + 9;
        while (char.IsAsciiDigit((char)body[offset + 1]))
        {
            offset++;
        }

        body[offset] = body[offset] == (byte)'0' ? (byte)'1' : (byte)(body[offset] - 1);
        var log = new CheckLog();

        var verified = CollateralVerifier.Verify(collateral with { TcbInfo = collateral.TcbInfo with { Body = body } }, set.Tee, TrustAnchors.Vendor, set.At, log);

        Assert.Null(verified.TcbInfo);
        var failure = Assert.Single(log.Failures);
        Assert.Equal(CollateralVerifier.TcbInfoCheck, failure.Check);
        Assert.Contains("signature does not verify", failure.Reason);
    }

    [VectorFact]
    public void A_tampered_qe_identity_signature_fails()
    {
        var set = CollateralVectors.Get("sgx-icelake-automata");
        var collateral = set.Load();
        var signature = (byte[])collateral.QeIdentity!.Signature.Clone();
        signature[5] ^= 1;
        var log = new CheckLog();

        var verified = CollateralVerifier.Verify(collateral with { QeIdentity = collateral.QeIdentity with { Signature = signature } }, TeeType.Sgx, TrustAnchors.Vendor, set.At, log);

        Assert.Null(verified.QeIdentity);
        Assert.Equal(CollateralVerifier.QeIdentityCheck, Assert.Single(log.Failures).Check);
    }

    [VectorFact]
    public void Tdx_collateral_for_an_sgx_quote_is_rejected_and_vice_versa()
    {
        var tdx = CollateralVectors.Get("tdx-spr-automata-2025-10");
        var sgx = CollateralVectors.Get("sgx-icelake-automata");
        var tdxLog = new CheckLog();
        var sgxLog = new CheckLog();

        var asSgx = CollateralVerifier.Verify(tdx.Load(), TeeType.Sgx, TrustAnchors.Vendor, tdx.At, tdxLog);
        var asTdx = CollateralVerifier.Verify(sgx.Load(), TeeType.Tdx, TrustAnchors.Vendor, sgx.At, sgxLog);

        Assert.Null(asSgx.TcbInfo);
        Assert.Null(asSgx.QeIdentity);
        Assert.Contains(tdxLog.Failures, f => f.Check == CollateralVerifier.TcbInfoCheck && f.Reason.Contains("TCB info is for tdx") && f.Reason.Contains("evidence is sgx"));
        Assert.Contains(tdxLog.Failures, f => f.Check == CollateralVerifier.QeIdentityCheck && f.Reason.Contains("TD_QE"));
        Assert.Null(asTdx.TcbInfo);
        Assert.Contains(sgxLog.Failures, f => f.Check == CollateralVerifier.TcbInfoCheck && f.Reason.Contains("TCB info is for sgx"));
    }

    [Fact]
    public void Empty_collateral_names_every_missing_item()
    {
        var log = new CheckLog();

        var verified = CollateralVerifier.Verify(new DcapCollateral(), TeeType.Tdx, TrustAnchors.Vendor, GatheredAt, log);

        Assert.Null(verified.TcbInfo);
        Assert.Equal(
            [
                (CollateralVerifier.RootCrlCheck, "collateral: root CA CRL missing"),
                (CollateralVerifier.TcbInfoCheck, "collateral: TCB info missing"),
                (CollateralVerifier.QeIdentityCheck, "collateral: QE identity missing"),
                (CollateralVerifier.PckCrlCheck, "collateral: PCK CRL missing"),
            ],
            log.Failures.Select(f => (f.Check, f.Reason)));
    }

    [Fact]
    public void Crls_that_start_like_pem_but_are_not_are_refused_by_their_checks()
    {
        var log = new CheckLog();

        var verified = CollateralVerifier.Verify(
            new DcapCollateral { RootCaCrl = "-"u8.ToArray(), PckCrl = "-----BEGIN X509 CRL-----"u8.ToArray() },
            TeeType.Sgx, TrustAnchors.Vendor, GatheredAt, log);

        Assert.Null(verified.RootCaCrl);
        Assert.Null(verified.PckCrl);
        Assert.Contains(log.Failures, f => f.Check == CollateralVerifier.RootCrlCheck && f.Reason.StartsWith("root CA CRL is malformed: crl:"));
        Assert.Contains(log.Failures, f => f.Check == CollateralVerifier.PckCrlCheck && f.Reason.StartsWith("PCK CRL is malformed: crl:"));
    }

    [Fact]
    public void A_root_crl_whose_issuer_is_not_a_name_is_refused_as_malformed()
    {
        // Its issuer is "02 01 00", an INTEGER: before the name was decoded at parse, the failure message's issuer name
        // threw a CryptographicException out of the verifier.
        var crl = CertificateRevocationListTests.WithIssuer([0x02, 0x01, 0x00]);
        var log = new CheckLog();

        var verified = CollateralVerifier.Verify(new DcapCollateral { RootCaCrl = crl }, TeeType.Sgx, TrustAnchors.Vendor, GatheredAt, log);

        Assert.Null(verified.RootCaCrl);
        Assert.Contains(log.Failures, f => f.Check == CollateralVerifier.RootCrlCheck && f.Reason.StartsWith("root CA CRL is malformed: crl: the issuer", StringComparison.Ordinal));
    }

    [VectorFact]
    public async Task A_pck_crl_whose_issuer_is_not_a_name_is_refused_as_malformed_by_the_whole_verifier()
    {
        // A real quote with its real collateral but that PCK CRL: the revocation check read the issuer's name too.
        var set = CollateralVectors.Get("tdx-emr-automata-2025-06");
        var collateral = set.Load() with { PckCrl = CertificateRevocationListTests.WithIssuer([0x02, 0x01, 0x00]) };
        var options = new DcapVerifyOptions { Time = new Microsoft.Extensions.Time.Testing.FakeTimeProvider(set.At), Collateral = collateral };

        var verification = await DcapVerifier.VerifyAsync(TestVectors.Read("tdx", "automata_alibaba_emr_90c06f000000_v5_quote.bin"), options);

        var failure = Assert.Single(verification.Log.Failures);
        Assert.Equal(CollateralVerifier.PckCrlCheck, failure.Check);
        Assert.StartsWith("PCK CRL is malformed: crl: the issuer", failure.Reason, StringComparison.Ordinal);
    }

    [Fact]
    public void Collateral_signed_by_an_untrusted_key_is_refused_even_with_its_own_chain()
    {
        // A forger's own "root" and "TCB Signing" certificate: trusted only if it were an anchor.
        using var rootKey = ECDsa.Create(ECCurve.NamedCurves.nistP256);
        using var signingKey = ECDsa.Create(ECCurve.NamedCurves.nistP256);
        var rootRequest = new CertificateRequest("CN=Intel SGX Root CA", rootKey, HashAlgorithmName.SHA256);
        rootRequest.CertificateExtensions.Add(new X509BasicConstraintsExtension(true, false, 0, true));
        var root = rootRequest.CreateSelfSigned(GatheredAt.AddYears(-1), GatheredAt.AddYears(1));
        var signing = new CertificateRequest("CN=Intel SGX TCB Signing", signingKey, HashAlgorithmName.SHA256)
            .Create(root, GatheredAt.AddYears(-1), GatheredAt.AddYears(1), [1, 2, 3]);
        var body = SyntheticCollateral.TcbInfoJson(GatheredAt, "SGX", "UpToDate");
        var signature = signingKey.SignData(body, HashAlgorithmName.SHA256, DSASignatureFormat.IeeeP1363FixedFieldConcatenation);
        var log = new CheckLog();

        var verified = CollateralVerifier.Verify(
            new DcapCollateral { TcbInfo = new SignedCollateralJson(body, signature), TcbSigningCertificates = [signing, root] },
            TeeType.Sgx, TrustAnchors.Vendor, GatheredAt, log);

        Assert.Null(verified.TcbInfo);
        Assert.Contains(log.Failures, f => f.Check == CollateralVerifier.TcbInfoCheck
            && f.Reason == "TCB info signature does not verify with any trusted Intel TCB signing certificate");
    }

    [Fact]
    public void Collateral_under_a_trusted_simulated_root_verifies_and_says_simulated()
    {
        var now = GatheredAt;
        using var rootKey = ECDsa.Create(ECCurve.NamedCurves.nistP256);
        using var signingKey = ECDsa.Create(ECCurve.NamedCurves.nistP256);
        var rootRequest = new CertificateRequest("CN=Morphisms Simulated SGX Root CA", rootKey, HashAlgorithmName.SHA256);
        rootRequest.CertificateExtensions.Add(new X509BasicConstraintsExtension(true, false, 0, true));
        var root = rootRequest.CreateSelfSigned(now.AddYears(-1), now.AddYears(1));
        var signing = new CertificateRequest("CN=Morphisms Simulated SGX TCB Signing", signingKey, HashAlgorithmName.SHA256)
            .Create(root, now.AddDays(-1), now.AddYears(1), [7]);
        var body = SyntheticCollateral.TcbInfoJson(now, "SGX", "UpToDate");
        var signature = signingKey.SignData(body, HashAlgorithmName.SHA256, DSASignatureFormat.IeeeP1363FixedFieldConcatenation);
        var anchors = TrustAnchors.Vendor.WithSimulated(null, new IntelRoot(root, Simulated: true));
        var log = new CheckLog();

        var verified = CollateralVerifier.Verify(
            new DcapCollateral { TcbInfo = new SignedCollateralJson(body, signature), TcbSigningCertificates = [signing] },
            TeeType.Sgx, anchors, now, log);

        Assert.NotNull(verified.TcbInfo);
        Assert.True(verified.Simulated);
        Assert.DoesNotContain(log.Failures, f => f.Check == CollateralVerifier.TcbInfoCheck);

        // The same collateral without the simulated anchor is refused.
        var vendorLog = new CheckLog();
        Assert.Null(CollateralVerifier.Verify(
            new DcapCollateral { TcbInfo = new SignedCollateralJson(body, signature), TcbSigningCertificates = [signing] },
            TeeType.Sgx, TrustAnchors.Vendor, now, vendorLog).TcbInfo);
    }

    [VectorFact]
    public void A_root_crl_not_signed_by_the_root_is_refused()
    {
        var set = CollateralVectors.Get("sgx-icelake-automata");
        var collateral = set.Load();
        var log = new CheckLog();

        // The PCK CRL offered as the root CRL: signed by the PCK Platform CA, not by the root.
        var verified = CollateralVerifier.Verify(collateral with { RootCaCrl = collateral.PckCrl }, TeeType.Sgx, TrustAnchors.Vendor, set.At, log);

        Assert.Null(verified.RootCaCrl);
        var failure = Assert.Single(log.Failures);
        Assert.Equal(CollateralVerifier.RootCrlCheck, failure.Check);
        Assert.Contains("not signed by a trusted Intel root", failure.Reason);
    }

    [VectorFact]
    public void Authentic_collateral_evaluated_after_every_signing_certificate_expired_is_shown_but_fails()
    {
        var set = CollateralVectors.Get("sgx-icelake-automata");
        var collateral = set.Load();
        var log = new CheckLog();

        var verified = CollateralVerifier.Verify(collateral, TeeType.Sgx, TrustAnchors.Vendor, new DateTimeOffset(2032, 6, 1, 0, 0, 0, TimeSpan.Zero), log);

        Assert.NotNull(verified.TcbInfo);
        Assert.Contains(log.Failures, f => f.Check == CollateralVerifier.TcbInfoCheck
            && f.Reason.Contains("TCB signing certificate that is not valid at the evaluation time (valid 2025-05-06T09:25:00Z to 2032-05-06T09:25:00Z)"));
        Assert.Contains(log.Failures, f => f.Check == CollateralVerifier.TcbInfoCheck && f.Reason.StartsWith("TCB info expired"));
    }
}
