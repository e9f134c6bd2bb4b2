using Morphisms.Attestation;
using Morphisms.Attestation.Abi.Dcap;
using Morphisms.Client.Trust;

namespace Morphisms.Client.Tests;

/// <summary>
/// KMS measurements tied to their TEE, against claims of real hardware evidence: a TDX KMS is pinned by MRTD and
/// RTMR0–3 (MRTD is only the firmware), and no value of one TEE passes for another.
/// </summary>
public sealed class KmsMeasurementPinTests
{
    /// <summary>A TD whose RTMR0–2 are set (kernel, command line, initrd measured), so a wrong RTMR is a real difference.</summary>
    private const string TdxQuote = "gotdxguest_emr_90c06f000000_v5_quote.bin";

    private static TdxClaims Tdx() => (TdxClaims)EvidenceVerifier.Parse(TeeType.Tdx, TestVectors.Read("tdx", TdxQuote));

    private static EvidenceClaims Snp() => EvidenceVerifier.Parse(TeeType.Snp, TestVectors.Read("snp", "trustee_milan_v2_report.bin"));

    private static EvidenceClaims Sgx() => EvidenceVerifier.Parse(TeeType.Sgx, TestVectors.Read("sgx", "dcaprs_icelake_00606a000000_v3_quote.bin"));

    private static string TdxText(TdxClaims c, int flip = -1)
    {
        var parts = new[] { c.MrTd, c.Rtmr0, c.Rtmr1, c.Rtmr2, c.Rtmr3 }.Select(m => m.ToArray()).ToArray();
        if (flip >= 0)
        {
            parts[flip][0] ^= 1;
        }

        return "tdx:" + string.Join('/', parts.Select(Convert.ToHexStringLower));
    }

    [VectorFact]
    public void A_tdx_pin_with_every_register_of_the_real_td_matches()
    {
        var claims = Tdx();
        Assert.True(claims.Rtmr1.Span.ContainsAnyExcept((byte)0), "the vector should measure a kernel into RTMR1");
        var pin = KmsMeasurementPin.Parse(TdxText(claims));

        Assert.Equal(TeeType.Tdx, pin.Tee);
        Assert.True(pin.Matches(claims));
        Assert.Equal(TdxText(claims), KmsMeasurementPin.Of(claims).ToString());
        Assert.Null(new KmsTrustOptions { ExpectedMeasurements = [pin] }.MeasurementFailure(claims));
    }

    /// <summary>Same firmware, another kernel, command line or initrd: MRTD matches, and that is not enough.</summary>
    [VectorTheory]
    [InlineData(1, "RTMR0")]
    [InlineData(2, "RTMR1")]
    [InlineData(3, "RTMR2")]
    [InlineData(4, "RTMR3")]
    public void The_right_mrtd_with_a_wrong_rtmr_is_refused_naming_it(int component, string name)
    {
        var claims = Tdx();
        var pin = KmsMeasurementPin.Parse(TdxText(claims, flip: component));

        Assert.False(pin.Matches(claims));
        Assert.Equal($"{name} differs", pin.Mismatch(claims));
        var failure = new KmsTrustOptions { ExpectedMeasurements = [pin] }.MeasurementFailure(claims);
        Assert.NotNull(failure);
        Assert.Contains($"which is not the expected {pin} ({name} differs)", failure);
    }

    [VectorFact]
    public void A_wrong_mrtd_is_refused_too()
    {
        var claims = Tdx();
        Assert.Equal("MRTD differs", KmsMeasurementPin.Parse(TdxText(claims, flip: 0)).Mismatch(claims));
    }

    /// <summary>The bare MRTD the pin used to be: refused as input, naming the registers that are missing.</summary>
    [VectorFact]
    public void A_tdx_pin_of_mrtd_alone_is_refused_naming_what_is_missing()
    {
        var mrTd = Convert.ToHexStringLower(Tdx().MrTd.Span);

        var alone = Assert.Throws<FormatException>(() => KmsMeasurementPin.Parse($"tdx:{mrTd}"));
        Assert.Contains("MRTD alone is not a KMS measurement", alone.Message);
        Assert.Contains("Missing: RTMR0, RTMR1, RTMR2, RTMR3", alone.Message);
        Assert.Contains("tdx:MRTD/RTMR0/RTMR1/RTMR2/RTMR3", alone.Message);

        var partial = Assert.Throws<FormatException>(() => KmsMeasurementPin.Parse($"tdx:{mrTd}/{mrTd}"));
        Assert.StartsWith("tdx: missing RTMR1, RTMR2, RTMR3", partial.Message);
    }

    /// <summary>
    /// An untyped 96-digit value is an SNP MEASUREMENT: equal to the TD's MRTD, it still does not pin the TDX KMS, and the
    /// refusal says how a TDX KMS is pinned. Typed as snp: it is refused the same way.
    /// </summary>
    [VectorFact]
    public void A_bare_or_snp_typed_value_equal_to_the_mrtd_does_not_pin_a_tdx_kms()
    {
        var claims = Tdx();
        var mrTd = Convert.ToHexStringLower(claims.MrTd.Span);
        foreach (var text in new[] { mrTd, $"snp:{mrTd}" })
        {
            var pin = KmsMeasurementPin.Parse(text);
            Assert.Equal(TeeType.Snp, pin.Tee);
            Assert.False(pin.Matches(claims));
            var failure = new KmsTrustOptions { ExpectedMeasurements = [pin] }.MeasurementFailure(claims);
            Assert.NotNull(failure);
            Assert.Contains("no expected measurement is for tdx", failure);
            Assert.Contains("tdx:MRTD/RTMR0/RTMR1/RTMR2/RTMR3", failure);
        }
    }

    /// <summary>A real SNP MEASUREMENT given as tdx: is not a TDX pin (one value), and a full tdx: pin never matches SNP.</summary>
    [VectorFact]
    public void An_snp_value_given_as_tdx_is_refused()
    {
        var snp = Snp();
        var measurement = Convert.ToHexStringLower(snp.Measurement.Span);

        Assert.Contains("MRTD alone", Assert.Throws<FormatException>(() => KmsMeasurementPin.Parse($"tdx:{measurement}")).Message);
        var tdxShaped = KmsMeasurementPin.Parse($"tdx:{string.Join('/', Enumerable.Repeat(measurement, 5))}");
        Assert.Equal("tdx, not snp", tdxShaped.Mismatch(snp));
        Assert.Contains("no expected measurement is for snp", new KmsTrustOptions { ExpectedMeasurements = [tdxShaped] }.MeasurementFailure(snp));

        Assert.True(KmsMeasurementPin.Parse($"snp:{measurement}").Matches(snp));
    }

    /// <summary>Untyped values keep their meaning where it was complete: 96 digits SNP, 64 digits SGX.</summary>
    [VectorFact]
    public void Bare_hex_is_read_as_the_snp_or_sgx_measurement_of_its_size()
    {
        var snp = Snp();
        var snpPin = KmsMeasurementPin.Parse(Convert.ToHexString(snp.Measurement.Span));
        Assert.Equal(TeeType.Snp, snpPin.Tee);
        Assert.True(snpPin.Matches(snp));

        var sgx = Sgx();
        var sgxPin = KmsMeasurementPin.Parse(Convert.ToHexStringLower(sgx.Measurement.Span));
        Assert.Equal(TeeType.Sgx, sgxPin.Tee);
        Assert.True(sgxPin.Matches(sgx));
        Assert.True(KmsMeasurementPin.Parse($"sgx:{Convert.ToHexStringLower(sgx.Measurement.Span)}").Matches(sgx));
        Assert.Equal("MRENCLAVE differs", KmsMeasurementPin.Sgx(new byte[32]).Mismatch(sgx));
    }

    [Theory]
    [InlineData("0011", "an untyped measurement of 2 bytes")]
    [InlineData("xyz", "not a hexadecimal string")]
    [InlineData("sev:00", "'sev:' is not a TEE")]
    [InlineData("snp:00", "snp: MEASUREMENT must be 96 hex digits, not 2")]
    [InlineData("sgx:zz", "sgx: MRENCLAVE is not hexadecimal")]
    public void Malformed_values_are_refused_with_the_reason(string text, string reason)
    {
        Assert.Contains(reason, Assert.Throws<FormatException>(() => KmsMeasurementPin.Parse(text)).Message);
    }

    [Fact]
    public void Too_many_tdx_values_and_a_short_rtmr_are_refused()
    {
        var value = new string('a', 96);
        Assert.Contains("exactly MRTD/RTMR0/RTMR1/RTMR2/RTMR3", Assert.Throws<FormatException>(() => KmsMeasurementPin.Parse("tdx:" + string.Join('/', Enumerable.Repeat(value, 6)))).Message);
        Assert.Contains("tdx: RTMR2 must be 96 hex digits", Assert.Throws<FormatException>(() => KmsMeasurementPin.Parse($"tdx:{value}/{value}/{value}/aa/{value}")).Message);
        Assert.Throws<ArgumentException>(() => KmsMeasurementPin.Snp(new byte[47]));
        Assert.Throws<ArgumentException>(() => KmsMeasurementPin.Tdx(new byte[48], new byte[48], new byte[48], new byte[48], new byte[32]));
    }
}
