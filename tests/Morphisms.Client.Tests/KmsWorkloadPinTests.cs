using System.Security.Cryptography;
using Morphisms.Attestation;
using Morphisms.Attestation.Abi.Dcap;
using Morphisms.Attestation.Abi.Snp;
using Morphisms.Attestation.Simulated;
using Morphisms.Client.Trust;

namespace Morphisms.Client.Tests;

/// <summary>
/// KMS pins that bind the workload of a KMS in a Kata confidential VM: SNP HOST_DATA and TDX MRCONFIGID (its initdata
/// digest) beside the guest image's launch values, which every pod of the runtime class shares. Old pins without them
/// keep their meaning; a KMS accepted by one while its report carries a workload binding is warned about.
/// </summary>
public sealed class KmsWorkloadPinTests : IDisposable
{
    /// <summary>A real TD (Granite Rapids, trustee) whose MRCONFIGID is set, as Kata sets it from initdata.</summary>
    private const string TdxWithConfigId = "trustee_gnr_00a06d080000_v4_quote.bin";

    private static readonly byte[] GuestImage = SHA384.HashData("the Kata guest image every pod of the runtime class boots"u8);
    private static readonly byte[] KmsInitdata = SHA256.HashData("the KMS's initdata.toml"u8);
    private static readonly byte[] ImpostorInitdata = SHA256.HashData("an impostor's initdata.toml"u8);

    private readonly SimulatedTeeAuthority _tee = SimulatedTeeAuthority.Create(TimeProvider.System);

    public void Dispose() => _tee.Dispose();

    /// <summary>SNP claims of a pod booted from <see cref="GuestImage"/> with <paramref name="hostData"/> (its initdata digest).</summary>
    private SnpClaims Snp(byte[] hostData) => (SnpClaims)EvidenceVerifier.Parse(TeeType.Snp,
        _tee.CreateSnpReport(new SimulatedSnpReportRequest { ReportData = new byte[64], Measurement = GuestImage, HostData = hostData }));

    private static TdxClaims Tdx(string vector = TdxWithConfigId) => (TdxClaims)EvidenceVerifier.Parse(TeeType.Tdx, TestVectors.Read("tdx", vector));

    private static string Hex(ReadOnlyMemory<byte> value) => Convert.ToHexStringLower(value.Span);

    private static string TdxLaunch(TdxClaims c) => "tdx:" + string.Join('/', new[] { c.MrTd, c.Rtmr0, c.Rtmr1, c.Rtmr2, c.Rtmr3 }.Select(Hex));

    [Fact]
    public void What_an_snp_kms_attests_includes_its_host_data_and_reads_back_as_the_same_pin()
    {
        var claims = Snp(KmsInitdata);
        var text = $"snp:{Hex(GuestImage)},host_data={Hex(KmsInitdata)}";

        var attested = KmsMeasurementPin.Of(claims);
        Assert.Equal(text, attested.ToString());
        Assert.True(attested.BindsWorkload);
        Assert.Equal(KmsInitdata, attested.Workload!.Value.ToArray());

        var parsed = KmsMeasurementPin.Parse(text);
        Assert.Equal(attested, parsed);
        Assert.True(parsed.Matches(claims));
        // Upper-case hex and the report's own field name are read too, and written back in the one typed form.
        Assert.Equal(text, KmsMeasurementPin.Parse($" snp:{Convert.ToHexString(GuestImage)}, HOST_DATA={Convert.ToHexString(KmsInitdata)} ").ToString());
        Assert.Equal(text, KmsMeasurementPin.Snp(GuestImage, KmsInitdata).ToString());
    }

    /// <summary>A pod of the same guest image with other initdata (an impostor KMS) fails on HOST_DATA, named.</summary>
    [Fact]
    public void Another_host_data_on_the_same_guest_image_is_refused_naming_host_data()
    {
        var pin = KmsMeasurementPin.Snp(GuestImage, KmsInitdata);
        var impostor = Snp(ImpostorInitdata);

        Assert.False(pin.Matches(impostor));
        Assert.Equal("HOST_DATA differs", pin.Mismatch(impostor));
        var failure = new KmsTrustOptions { ExpectedMeasurements = [pin] }.MeasurementFailure(impostor);
        Assert.Equal($"the KMS attests snp:{Hex(GuestImage)},host_data={Hex(ImpostorInitdata)}, which is not the expected {pin} (HOST_DATA differs)", failure);

        // Both differing are both named; a pod started without initdata says so.
        var otherImage = KmsMeasurementPin.Snp(new byte[48].Select(_ => (byte)7).ToArray(), KmsInitdata);
        Assert.Equal("MEASUREMENT, HOST_DATA differ", otherImage.Mismatch(impostor));
        Assert.Equal("HOST_DATA differs (the KMS's HOST_DATA is all zeros: it was started without initdata)", pin.Mismatch(Snp(new byte[32])));
    }

    /// <summary>The old form keeps its meaning: the measurement alone, whatever HOST_DATA is.</summary>
    [Fact]
    public void A_pin_without_host_data_still_matches_any_host_data()
    {
        var old = KmsMeasurementPin.Parse($"snp:{Hex(GuestImage)}");
        Assert.False(old.BindsWorkload);
        Assert.Null(old.Workload);
        Assert.True(old.Matches(Snp(KmsInitdata)));
        Assert.True(old.Matches(Snp(ImpostorInitdata)));
        Assert.Equal(old, KmsMeasurementPin.Parse(Hex(GuestImage)));

        // What a pod without initdata attests is written as before, with no host_data.
        Assert.Equal($"snp:{Hex(GuestImage)}", KmsMeasurementPin.Of(Snp(new byte[32])).ToString());
    }

    [VectorFact]
    public void What_a_tdx_kms_attests_includes_its_mrconfigid_and_a_wrong_one_is_named()
    {
        var claims = Tdx();
        Assert.True(claims.MrConfigId.Span.ContainsAnyExcept((byte)0), "the vector should carry an MRCONFIGID");
        var text = $"{TdxLaunch(claims)},mrconfigid={Hex(claims.MrConfigId)}";

        var attested = KmsMeasurementPin.Of(claims);
        Assert.Equal(text, attested.ToString());
        Assert.Equal(attested, KmsMeasurementPin.Parse(text));
        Assert.True(KmsMeasurementPin.Parse(text).Matches(claims));

        var wrong = claims.MrConfigId.ToArray();
        wrong[47] ^= 1;
        var pin = KmsMeasurementPin.Parse($"{TdxLaunch(claims)},mrconfigid={Convert.ToHexStringLower(wrong)}");
        Assert.Equal("MRCONFIGID differs", pin.Mismatch(claims));

        // The launch-only form still matches, and a TD with no MRCONFIGID is written as before.
        Assert.True(KmsMeasurementPin.Parse(TdxLaunch(claims)).Matches(claims));
        var plain = Tdx("gotdxguest_emr_90c06f000000_v5_quote.bin");
        Assert.Equal(TdxLaunch(plain), KmsMeasurementPin.Of(plain).ToString());
        Assert.Contains("(the KMS's MRCONFIGID is all zeros", KmsMeasurementPin.Parse($"{TdxLaunch(plain)},mrconfigid={Hex(claims.MrConfigId)}").Mismatch(plain));
    }

    [Theory]
    [InlineData("sgx:{M32},host_data={H32}", "sgx: takes nothing after MRENCLAVE")]
    [InlineData("snp:{M48},mrconfigid={H48}", "snp: mrconfigid is TDX's; a snp KMS's workload is bound by host_data=HEX (64 hex digits")]
    [InlineData("tdx:{TDX},host_data={H32}", "tdx: host_data is SNP's; a tdx KMS's workload is bound by mrconfigid=HEX (96 hex digits")]
    [InlineData("snp:{M48},policy=0", "snp: 'policy' is not a KMS pin field")]
    [InlineData("snp:{M48},{H32}", "is not a KMS pin field")]
    [InlineData("snp:{M48},host_data", "snp: host_data has no value")]
    [InlineData("snp:{M48},host_data={H32},host_data={H32}", "snp: 2 items after the measurement")]
    [InlineData("snp:{M48},host_data={H48}", "snp: host_data must be 64 hex digits, not 96")]
    [InlineData("tdx:{TDX},mrconfigid={H32}", "tdx: mrconfigid must be 96 hex digits, not 64")]
    [InlineData("snp:{M48},host_data=zz", "snp: host_data is not hexadecimal")]
    [InlineData("snp:{M48},host_data={Z32}", "snp: host_data of all zeros binds no workload")]
    [InlineData("snp:{M48},", "snp: '' is not a KMS pin field")]
    [InlineData("tdx:{M48},mrconfigid={H48}", "MRTD alone is not a KMS measurement")]
    public void Malformed_workload_bindings_are_refused_with_the_reason(string template, string reason)
    {
        var text = template
            .Replace("{TDX}", string.Join('/', Enumerable.Repeat(new string('a', 96), 5)), StringComparison.Ordinal)
            .Replace("{M32}", new string('a', 64), StringComparison.Ordinal)
            .Replace("{M48}", new string('a', 96), StringComparison.Ordinal)
            .Replace("{H32}", new string('b', 64), StringComparison.Ordinal)
            .Replace("{H48}", new string('b', 96), StringComparison.Ordinal)
            .Replace("{Z32}", new string('0', 64), StringComparison.Ordinal);
        Assert.Contains(reason, Assert.Throws<FormatException>(() => KmsMeasurementPin.Parse(text)).Message);
    }

    [Fact]
    public void Workload_bindings_of_the_wrong_size_tee_or_all_zeros_cannot_be_built()
    {
        Assert.Throws<ArgumentException>(() => KmsMeasurementPin.Sgx(new byte[32]).WithWorkload(KmsInitdata));
        Assert.Throws<ArgumentException>(() => KmsMeasurementPin.Snp(GuestImage, new byte[48]));
        Assert.Throws<ArgumentException>(() => KmsMeasurementPin.Snp(GuestImage, new byte[32]));
        Assert.Throws<ArgumentException>(() => KmsMeasurementPin.Tdx(GuestImage, GuestImage, GuestImage, GuestImage, GuestImage).WithWorkload(KmsInitdata));
        Assert.Equal(48, KmsMeasurementPin.Tdx(GuestImage, GuestImage, GuestImage, GuestImage, GuestImage).WithWorkload(GuestImage).Workload!.Value.Length);
    }

    /// <summary>
    /// Between recorded pins (a node's attested value against a record's expected one, as <see cref="KmsTlsPin"/>
    /// compares them): a pin without host_data accepts any, one with it only the same.
    /// </summary>
    [Fact]
    public void A_pin_accepts_an_attested_pin_with_every_component_it_names()
    {
        var launchOnly = KmsMeasurementPin.Snp(GuestImage);
        var bound = KmsMeasurementPin.Snp(GuestImage, KmsInitdata);

        Assert.True(launchOnly.Accepts(bound));
        Assert.True(launchOnly.Accepts(launchOnly));
        Assert.True(bound.Accepts(bound));
        Assert.False(bound.Accepts(launchOnly));
        Assert.False(bound.Accepts(KmsMeasurementPin.Snp(GuestImage, ImpostorInitdata)));
        Assert.False(launchOnly.Accepts(KmsMeasurementPin.Snp(SHA384.HashData("another image"u8))));
        Assert.False(KmsMeasurementPin.Tdx(GuestImage, GuestImage, GuestImage, GuestImage, GuestImage).Accepts(launchOnly));
    }

    /// <summary>
    /// A pin without host_data that accepts a KMS whose report carries HOST_DATA passes, with a warning that names what
    /// the pin misses and the full pin to use; no warning when the pin binds it, when there is none, or for SGX.
    /// </summary>
    [Fact]
    public void A_pin_that_binds_only_the_guest_image_of_a_kata_kms_is_warned_about()
    {
        var claims = Snp(KmsInitdata);
        var launchOnly = new KmsTrustOptions { ExpectedMeasurements = [KmsMeasurementPin.Snp(GuestImage)] };

        Assert.Null(launchOnly.MeasurementFailure(claims));
        var warning = launchOnly.WorkloadWarning(claims);
        Assert.NotNull(warning);
        Assert.Contains($"the pin snp:{Hex(GuestImage)} accepted this KMS without its HOST_DATA, so it does NOT bind the KMS workload", warning);
        Assert.Contains("a fake KMS whose report binds its own TLS key", warning);
        Assert.Contains($"HOST_DATA is {Hex(KmsInitdata)}", warning);
        Assert.EndsWith($"pin snp:{Hex(GuestImage)},host_data={Hex(KmsInitdata)} instead", warning);

        // An upgrade set where the pin that matched binds it: nothing to say.
        var bound = new KmsTrustOptions { ExpectedMeasurements = [KmsMeasurementPin.Snp(GuestImage), KmsMeasurementPin.Snp(GuestImage, KmsInitdata)] };
        Assert.Null(bound.WorkloadWarning(claims));
        Assert.Null(launchOnly.WorkloadWarning(Snp(new byte[32])));
        Assert.Null(new KmsTrustOptions { AnyMeasurement = true }.WorkloadWarning(claims));
    }

    [VectorFact]
    public void A_tdx_pin_without_mrconfigid_is_warned_about_with_the_full_pin()
    {
        var claims = Tdx();
        var warning = new KmsTrustOptions { ExpectedMeasurements = [KmsMeasurementPin.Parse(TdxLaunch(claims))] }.WorkloadWarning(claims);
        Assert.NotNull(warning);
        Assert.Contains("without its MRCONFIGID, so it does NOT bind the KMS workload", warning);
        Assert.Contains("TDX MRTD and RTMR0-3 measure", warning);
        Assert.EndsWith($"pin {TdxLaunch(claims)},mrconfigid={Hex(claims.MrConfigId)} instead", warning);
        Assert.Null(new KmsTrustOptions { ExpectedMeasurements = [KmsMeasurementPin.Of(claims)] }.WorkloadWarning(claims));
    }
}
