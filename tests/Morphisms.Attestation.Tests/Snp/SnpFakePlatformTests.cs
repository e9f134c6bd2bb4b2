using System.Formats.Asn1;
using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;
using Microsoft.Extensions.Time.Testing;
using Morphisms.Attestation.Abi.Snp;
using Morphisms.Attestation.Verify;
using Morphisms.Attestation.Verify.Snp;
using Morphisms.Testing;

namespace Morphisms.Attestation.Tests.Snp;

/// <summary>What the real vectors cannot show: CRLs, Turin, version 5, VLEK without chip, the simulated flag.</summary>
public class SnpFakePlatformTests
{
    private static FakeAmd Milan => FakeAmd.Milan;

    private static FakeAmd Turin => FakeAmd.Turin;

    [Fact]
    public void Fake_report_verifies_and_is_marked_simulated()
    {
        var result = Verifier(Milan).Verify(Milan.Report(), new SnpEndorsements(Milan.Vcek));

        Assert.True(result.Passed, string.Join("\n", result.Log.Failures));
        Assert.True(result.Simulated);
        Assert.True(result.Claims.Simulated);
        Assert.Equal("Milan", result.Claims.Product);
    }

    [Fact]
    public void Real_style_anchor_is_not_marked_simulated()
    {
        var real = FakeAmd.GenoaNotSimulated;
        var result = Verifier(real).Verify(real.Report(), new SnpEndorsements(real.Vcek));

        Assert.True(result.Passed, string.Join("\n", result.Log.Failures));
        Assert.False(result.Simulated);
    }

    [Fact]
    public void Vlek_report_verifies_without_a_chip_id()
    {
        var result = Verifier(Milan).Verify(Milan.Report(signer: SnpSigningKey.Vlek), new SnpEndorsements(Milan.Vlek));

        Assert.True(result.Passed, string.Join("\n", result.Log.Failures));
    }

    [Fact]
    public void Unsigned_report_fails()
    {
        var report = Milan.Report(edit: b => b[0x48] = 7 << 2);
        var result = Verifier(Milan).Verify(report, new SnpEndorsements(Milan.Vcek));

        Assert.Contains(result.Log.Failures, f => f.Check == SnpChecks.Signature && f.Reason.Contains("no signature"));
        Assert.Contains(result.Log.Failures, f => f.Check == SnpChecks.SigningKey);
    }

    [Fact]
    public void Masked_chip_id_skips_the_chip_check()
    {
        var report = Milan.Report(edit: b =>
        {
            b[0x48] |= 2;
            b.AsSpan(0x1A0, 64).Clear();
        });

        var result = Verifier(Milan).Verify(report, new SnpEndorsements(Milan.Vcek));

        Assert.True(result.Passed, string.Join("\n", result.Log.Failures));
    }

    [Fact]
    public void A_zero_chip_id_from_a_platform_with_mask_chip_id_verifies_under_its_vcek()
    {
        // MaskChipId is a platform setting the report does not show: CHIP_ID is zeros, MASK_CHIP_KEY stays clear.
        var report = Milan.Report(edit: b => b.AsSpan(0x1A0, 64).Clear());

        var result = Verifier(Milan).Verify(report, new SnpEndorsements(Milan.Vcek));

        Assert.True(result.Passed, string.Join("\n", result.Log.Failures));
    }

    [Fact]
    public void Chip_id_other_than_the_hwid_fails()
    {
        var report = Milan.Report(edit: b => b[0x1A0] ^= 1);

        var result = Verifier(Milan).Verify(report, new SnpEndorsements(Milan.Vcek));

        Assert.Equal([SnpChecks.ChipId], result.Log.Failures.Select(f => f.Check));
    }

    [Fact]
    public void Turin_v5_report_verifies_with_the_fmc_and_an_8_byte_hwid()
    {
        var bytes = Turin.Report(version: 5, edit: b => b[0x1F8] = 0x3);
        var report = SnpReport.Parse(bytes);
        Assert.Equal(TcbLayout.Turin, report.Layout);
        Assert.Equal((ulong?)3, report.LaunchMitigationVector);

        var result = Verifier(Turin).Verify(report, new SnpEndorsements(Turin.Vcek));

        Assert.True(result.Passed, string.Join("\n", result.Log.Failures));
        Assert.Equal("Turin", result.Claims.Product);
    }

    [Fact]
    public void Turin_report_with_another_fmc_fails_the_tcb_match()
    {
        var bytes = Turin.Report(version: 5, edit: b => b[0x180] = 9);

        var result = Verifier(Turin).Verify(bytes, new SnpEndorsements(Turin.Vcek));

        var failure = Assert.Single(result.Log.Failures);
        Assert.Equal(SnpChecks.KeyTcb, failure.Check);
        Assert.Contains("fmcSPL report 9 certificate 3", failure.Reason);
    }

    [Fact]
    public void Current_crl_that_lists_nothing_passes()
    {
        var crl = Milan.Crl(FakeAmd.Now.AddDays(-1), FakeAmd.Now.AddDays(6));
        var result = Verifier(Milan, crl).Verify(Milan.Report(), new SnpEndorsements(Milan.Vcek));

        Assert.True(result.Passed, string.Join("\n", result.Log.Failures));
    }

    [Fact]
    public void Crl_supplied_with_the_endorsements_is_checked()
    {
        var crl = CertificateRevocationList.Parse(Milan.Crl(FakeAmd.Now.AddDays(-1), FakeAmd.Now.AddDays(6), null, Milan.Vcek));
        var result = Verifier(Milan).Verify(Milan.Report(), new SnpEndorsements(Milan.Vcek, crl: crl));

        Assert.Contains(result.Log.Failures, f => f.Check == SnpChecks.Crl && f.Reason.Contains("SEV-VCEK") && f.Reason.Contains("revoked"));
    }

    [Fact]
    public void Revoked_ask_fails()
    {
        var crl = Milan.Crl(FakeAmd.Now.AddDays(-1), FakeAmd.Now.AddDays(6), null, Milan.Ask);
        var result = Verifier(Milan, crl).Verify(Milan.Report(), new SnpEndorsements(Milan.Vcek));

        var failure = Assert.Single(result.Log.Failures);
        Assert.Equal(SnpChecks.Crl, failure.Check);
        Assert.Contains("'SEV-Milan'", failure.Reason);
    }

    [Fact]
    public void Stale_crl_fails()
    {
        var crl = Milan.Crl(FakeAmd.Now.AddDays(-40), FakeAmd.Now.AddDays(-10));
        var result = Verifier(Milan, crl).Verify(Milan.Report(), new SnpEndorsements(Milan.Vcek));

        var failure = Assert.Single(result.Log.Failures);
        Assert.Equal(SnpChecks.Crl, failure.Check);
        Assert.Contains("not current", failure.Reason);
    }

    [Fact]
    public void Crl_not_signed_by_the_ark_fails()
    {
        var crl = Milan.Crl(FakeAmd.Now.AddDays(-1), FakeAmd.Now.AddDays(6), Milan.AskWithKey());
        var result = Verifier(Milan, crl).Verify(Milan.Report(), new SnpEndorsements(Milan.Vcek));

        var failure = Assert.Single(result.Log.Failures);
        Assert.Equal(SnpChecks.Crl, failure.Check);
        Assert.Contains("not signed by the trusted", failure.Reason);
    }

    [Fact]
    public void Unreadable_crl_fails()
    {
        var result = Verifier(Milan, [0x30, 0x03, 0x02, 0x01]).Verify(Milan.Report(), new SnpEndorsements(Milan.Vcek));

        Assert.Contains(result.Log.Failures, f => f.Check == SnpChecks.Crl && f.Reason.Contains("cannot be read"));
    }

    [Fact]
    public void Required_crl_that_is_missing_fails()
    {
        var options = new SnpVerifyOptions { Anchors = Milan.Anchors, Time = new FakeTimeProvider(FakeAmd.Now), CheckCrl = true };
        var result = new SnpVerifier(options).Verify(Milan.Report(), new SnpEndorsements(Milan.Vcek));

        var failure = Assert.Single(result.Log.Failures);
        Assert.Equal(SnpChecks.Crl, failure.Check);
    }

    [Fact]
    public void Vcek_whose_pss_salt_overflows_an_int_fails_the_chain_instead_of_throwing()
    {
        // Issued under the ASK's name with an RSA-PSS algorithm, so the verifier reads the PSS parameters.
        using var vcek = X509CertificateLoader.LoadCertificate(WithSignatureAlgorithm(Milan.Vcek, X509SignatureTests.HugeSaltSha384()));

        var result = Verifier(Milan).Verify(Milan.Report(), new SnpEndorsements(vcek));

        var failure = Assert.Single(result.Log.Failures);
        Assert.Equal(SnpChecks.Chain, failure.Check);
        Assert.Contains("signature does not verify", failure.Reason);
    }

    [Fact]
    public void Key_that_is_not_p384_fails_the_signature()
    {
        using var p256 = ECDsa.Create(ECCurve.NamedCurves.nistP256);
        var request = new CertificateRequest("CN=SEV-VCEK", p256, HashAlgorithmName.SHA256);
        using var leaf = request.CreateSelfSigned(FakeAmd.Now.AddDays(-1), FakeAmd.Now.AddDays(1));

        var result = Verifier(Milan).Verify(Milan.Report(), new SnpEndorsements(leaf));

        Assert.Contains(result.Log.Failures, f => f.Check == SnpChecks.Signature && f.Reason.Contains("P-384"));
        Assert.Contains(result.Log.Failures, f => f.Check == SnpChecks.KeyExtensions);
    }

    [Fact]
    public void Key_on_a_curve_no_library_knows_fails_the_checks_instead_of_throwing()
    {
        using var vcek = X509CertificateLoader.LoadCertificate(TestCertificates.OnUnknownCurve(Milan.Vcek.RawData));

        var result = Verifier(Milan).Verify(Milan.Report(), new SnpEndorsements(vcek));

        Assert.Contains(result.Log.Failures, f => f.Check == SnpChecks.Signature && f.Reason.Contains("P-384"));
        Assert.Contains(result.Log.Failures, f => f.Check == SnpChecks.Chain);

        // Every certificate supplied with the evidence is read the same way, not only the VCEK.
        using var p384 = ECDsa.Create(ECCurve.NamedCurves.nistP384);
        using var root = new CertificateRequest("CN=ARK-Milan, O=Test AMD", p384, HashAlgorithmName.SHA384).CreateSelfSigned(FakeAmd.Now.AddDays(-1), FakeAmd.Now.AddDays(1));
        using var unreadableRoot = X509CertificateLoader.LoadCertificate(TestCertificates.OnUnknownCurve(root.RawData));

        result = Verifier(Milan).Verify(Milan.Report(), new SnpEndorsements(Milan.Vcek, [unreadableRoot]));

        Assert.Contains(result.Log.Failures, f => f.Check == SnpChecks.Chain);
    }

    [Fact]
    public void Key_on_explicit_curve_parameters_fails_the_signature_instead_of_throwing()
    {
        // P-384's field and order with another generator: the library imports it, but it is no named curve (no OID).
        var curve = ECDsa.Create(ECCurve.NamedCurves.nistP384).ExportExplicitParameters(false).Curve;
        using (var other = ECDsa.Create(ECCurve.NamedCurves.nistP384))
        {
            curve.G = other.ExportParameters(false).Q;
        }

        using var key = ECDsa.Create(curve);
        using var issuerKey = ECDsa.Create(ECCurve.NamedCurves.nistP384);
        var request = new CertificateRequest(new X500DistinguishedName("CN=SEV-VCEK"), PublicKey.CreateFromSubjectPublicKeyInfo(key.ExportSubjectPublicKeyInfo(), out _), HashAlgorithmName.SHA384);
        using var vcek = request.Create(Milan.Ask.SubjectName, X509SignatureGenerator.CreateForECDsa(issuerKey), FakeAmd.Now.AddDays(-1), FakeAmd.Now.AddDays(1), [1]);

        var result = Verifier(Milan).Verify(Milan.Report(), new SnpEndorsements(vcek));

        Assert.Contains(result.Log.Failures, f => f.Check == SnpChecks.Signature && f.Reason.Contains("P-384"));
    }

    /// <summary>The certificate with its outer signatureAlgorithm replaced (the TBS and signature kept).</summary>
    private static byte[] WithSignatureAlgorithm(X509Certificate2 certificate, byte[] algorithm)
    {
        var reader = new AsnReader(certificate.RawData, AsnEncodingRules.DER).ReadSequence();
        var tbs = reader.ReadEncodedValue();
        reader.ReadEncodedValue();
        var signature = reader.ReadBitString(out _);
        var writer = new AsnWriter(AsnEncodingRules.DER);
        writer.PushSequence();
        writer.WriteEncodedValue(tbs.Span);
        writer.WriteEncodedValue(algorithm);
        writer.WriteBitString(signature);
        writer.PopSequence();
        return writer.Encode();
    }

    private static SnpVerifier Verifier(FakeAmd platform, byte[]? crl = null) =>
        new(new SnpVerifyOptions { Anchors = platform.Anchors, Time = new FakeTimeProvider(FakeAmd.Now), Crl = crl });

}
