using System.Security.Cryptography;
using Morphisms.Attestation.Collateral;
using Morphisms.Attestation.Simulated;
using Morphisms.Attestation.Trust;

namespace Morphisms.Attestation.Tests.Simulated;

/// <summary>Generate → verify → appraise, through the same verifiers that check real hardware evidence.</summary>
public sealed class SimulatedRoundTripTests(SimulatedFixture fixture) : IClassFixture<SimulatedFixture>
{
    private readonly SimulatedTeeAuthority _tee = fixture.Authority;
    private readonly byte[] _reportData = SHA512.HashData("morphisms/attest/v1 test binding"u8);
    private readonly byte[] _snpMeasurement = SHA384.HashData("function bundle"u8);
    private readonly byte[] _mrEnclave = SHA256.HashData("function bundle"u8);

    [Fact]
    public async Task Snp_report_verifies_when_the_simulated_root_is_trusted_and_says_simulated()
    {
        var result = await VerifySnp(Report(), _tee.TrustedWith(TrustAnchors.Vendor), _snpMeasurement);
        Assert.True(result.Accepted, string.Join("; ", result.Failures));
        Assert.True(result.Simulated);
        Assert.Equal(AttestationStatus.Warning, result.Status);
        Assert.Contains(result.Warnings, w => w.Contains("simulated"));
        Assert.Equal(_snpMeasurement, result.Claims.Measurement.ToArray());
        Assert.Equal(_reportData, result.Claims.ReportData.ToArray());
    }

    [Fact]
    public async Task Snp_report_is_rejected_by_the_vendor_roots_alone()
    {
        var result = await VerifySnp(Report(), TrustAnchors.Vendor, expected: null);
        Assert.False(result.Accepted);
        Assert.Contains(result.Failures, f => f.Check.StartsWith("snp.chain", StringComparison.Ordinal) || f.Check.StartsWith("snp.product", StringComparison.Ordinal));
    }

    [Fact]
    public async Task Snp_report_with_another_measurement_is_refused()
    {
        var other = SHA384.HashData("one byte changed"u8);
        var result = await VerifySnp(Report(), _tee.TrustedWith(TrustAnchors.Vendor), other);
        Assert.False(result.Accepted);
        Assert.Contains(result.Failures, f => f.Check.Contains("measurement", StringComparison.Ordinal));
    }

    [Fact]
    public async Task Snp_report_allowing_debug_is_refused_by_default()
    {
        var report = _tee.CreateSnpReport(new SimulatedSnpReportRequest
        {
            ReportData = _reportData,
            Measurement = _snpMeasurement,
            Policy = SimulatedTeeAuthority.DefaultSnpPolicy | (1UL << 19),
        });
        var result = await VerifySnp(report, _tee.TrustedWith(TrustAnchors.Vendor), _snpMeasurement);
        Assert.False(result.Accepted);
        Assert.Contains(result.Failures, f => f.Check.Contains("debug", StringComparison.Ordinal));
    }

    [Fact]
    public async Task Every_flipped_byte_of_a_simulated_snp_report_is_rejected()
    {
        var report = Report();
        var anchors = _tee.TrustedWith(TrustAnchors.Vendor);
        for (var i = 0; i < 0x2A0; i += 7)
        {
            var tampered = (byte[])report.Clone();
            tampered[i] ^= 0x01;
            try
            {
                var result = await VerifySnp(tampered, anchors, expected: null);
                Assert.False(result.Accepted, $"flip at 0x{i:x3} was accepted");
            }
            catch (EvidenceFormatException)
            {
                // A flip in a structural field (version, signature algorithm) is rejected while parsing.
            }
        }
    }

    [Fact]
    public async Task Sgx_quote_verifies_with_its_collateral_when_the_simulated_root_is_trusted()
    {
        var result = await VerifySgx(Quote(), _tee.TrustedWith(TrustAnchors.Vendor), _tee.CreateSgxCollateral(DateTimeOffset.UtcNow), _mrEnclave);
        Assert.True(result.Accepted, string.Join("; ", result.Failures));
        Assert.True(result.Simulated);
        Assert.Equal("UpToDate", result.TcbStatus);
        Assert.Equal(AttestationStatus.Warning, result.Status);
        Assert.Equal(_mrEnclave, result.Claims.Measurement.ToArray());
    }

    [Fact]
    public async Task Sgx_quote_is_rejected_by_the_vendor_roots_alone()
    {
        var result = await VerifySgx(Quote(), TrustAnchors.Vendor, _tee.CreateSgxCollateral(DateTimeOffset.UtcNow), expected: null);
        Assert.False(result.Accepted);
        Assert.Contains(result.Failures, f => f.Check.Contains("pck_chain", StringComparison.Ordinal));
    }

    [Fact]
    public async Task Debug_sgx_enclave_and_tampered_quote_are_rejected()
    {
        var collateral = _tee.CreateSgxCollateral(DateTimeOffset.UtcNow);
        var anchors = _tee.TrustedWith(TrustAnchors.Vendor);
        var debug = _tee.CreateSgxQuote(new SimulatedSgxQuoteRequest { ReportData = _reportData, MrEnclave = _mrEnclave, Debug = true });
        var debugResult = await VerifySgx(debug, anchors, collateral, _mrEnclave);
        Assert.Contains(debugResult.Failures, f => f.Check == "sgx.debug");

        var tampered = Quote();
        tampered[112] ^= 0x80; // first byte of MRENCLAVE
        var tamperedResult = await VerifySgx(tampered, anchors, collateral, expected: null);
        Assert.Contains(tamperedResult.Failures, f => f.Check == "dcap.quote_signature");
    }

    [Fact]
    public async Task Simulated_collateral_expires_like_intels()
    {
        var collateral = _tee.CreateSgxCollateral(DateTimeOffset.UtcNow.AddDays(-60));
        var result = await VerifySgx(Quote(), _tee.TrustedWith(TrustAnchors.Vendor), collateral, _mrEnclave);
        Assert.False(result.Accepted);
        Assert.Contains(result.Failures, f => f.Reason.Contains("expired", StringComparison.Ordinal));
    }

    private byte[] Report() => _tee.CreateSnpReport(new SimulatedSnpReportRequest { ReportData = _reportData, Measurement = _snpMeasurement });

    private byte[] Quote() => _tee.CreateSgxQuote(new SimulatedSgxQuoteRequest { ReportData = _reportData, MrEnclave = _mrEnclave });

    private Task<AttestationResult> VerifySnp(byte[] report, TrustAnchors anchors, byte[]? expected) =>
        EvidenceVerifier.VerifyAsync(new EvidenceVerificationRequest
        {
            Tee = TeeType.Snp,
            Evidence = report,
            SnpCertificate = _tee.Vcek.RawData,
            Anchors = anchors,
            ExpectedMeasurement = expected,
        });

    private static Task<AttestationResult> VerifySgx(byte[] quote, TrustAnchors anchors, DcapCollateral collateral, byte[]? expected) =>
        EvidenceVerifier.VerifyAsync(new EvidenceVerificationRequest
        {
            Tee = TeeType.Sgx,
            Evidence = quote,
            Collateral = new FixedCollateralSource(collateral),
            Anchors = anchors,
            ExpectedMeasurement = expected,
        });
}
