using System.Security.Cryptography;
using Morphisms.Attestation.Simulated;
using Morphisms.Attestation.Trust;
using Morphisms.Client.Trust;
using Morphisms.Kms;

namespace Morphisms.Client.Tests;

/// <summary>
/// One dev KMS (simulated TEE, TLS on loopback) shared by a test class, attesting as <paramref name="attestation"/>
/// configures it for the fixture's simulated TEE: key generation is the slow part.
/// </summary>
public abstract class SimulatedKmsFixture(Func<SimulatedTeeAuthority, KmsAttestationOptions> attestation) : IAsyncLifetime
{
    public SimulatedTeeAuthority Tee { get; } = SimulatedTeeAuthority.Create(TimeProvider.System);

    public KmsServer Kms { get; private set; } = null!;

    public async Task InitializeAsync()
    {
        Kms = new KmsServer(new KmsServerOptions
        {
            Listen = "127.0.0.1:0",
            Storage = "inmem",
            Dev = true,
            Tls = KmsTlsOptions.SelfSigned,
            WarningWriter = TextWriter.Null,
            Attestation = attestation(Tee),
        });
        await Kms.StartAsync();
    }

    public async Task DisposeAsync()
    {
        await Kms.DisposeAsync();
        Tee.Dispose();
    }
}

/// <summary>The dev KMS whose simulated SNP evidence shows its own build's measurement.</summary>
public sealed class DevKmsFixture() : SimulatedKmsFixture(tee => new KmsAttestationOptions { SimulatedTee = tee, TrustSimulatedTee = true, SimulatedMeasurement = KmsMeasurement })
{
    public static readonly byte[] KmsMeasurement = SHA384.HashData("the KMS's own build"u8);
}

/// <summary>Attesting a real KMS before trusting it.</summary>
public sealed class KmsAttestationClientTests(DevKmsFixture fixture) : IClassFixture<DevKmsFixture>
{
    private static readonly byte[] KmsMeasurement = DevKmsFixture.KmsMeasurement;

    /// <summary>The dev KMS's simulated evidence is SNP-format, so its measurement is pinned as SNP.</summary>
    private static readonly KmsMeasurementPin KmsPin = KmsMeasurementPin.Snp(KmsMeasurement);
    private readonly SimulatedTeeAuthority _tee = fixture.Tee;
    private readonly KmsServer _kms = fixture.Kms;

    private string Url => _kms.BaseAddress!.ToString();

    private KmsTrustOptions SimulatedRootTrusted => new() { Anchors = _tee.TrustedWith(TrustAnchors.Vendor) };

    [Fact]
    public async Task A_kms_whose_evidence_binds_its_tls_key_and_root_ca_is_pinned()
    {
        var outcome = await KmsAttestationClient.VerifyAsync(Url, SimulatedRootTrusted with { ExpectedMeasurements = [KmsPin] });
        Assert.True(outcome.Trusted, string.Join("; ", outcome.Failures));
        var record = outcome.Record!;
        Assert.True(record.Simulated);
        Assert.Equal("snp:" + Convert.ToHexStringLower(KmsMeasurement), record.Measurement);
        Assert.Equal(["snp:" + Convert.ToHexStringLower(KmsMeasurement)], record.ExpectedMeasurements);
        Assert.False(record.AnyMeasurement);
        Assert.True(record.RootCaKeyProven);
        Assert.Null(record.UsabilityProblem());
        Assert.Equal(Convert.ToHexStringLower(SHA256.HashData(_kms.TlsCertificate!.PublicKey.ExportSubjectPublicKeyInfo())), record.TlsSpkiSha256);
        Assert.Contains("BEGIN CERTIFICATE", record.RootCaPem);
    }

    /// <summary>Genuine evidence alone proves only "some TEE": without a measurement to expect, nothing is even asked.</summary>
    [Fact]
    public async Task Without_an_expected_measurement_the_kms_is_refused_before_it_is_asked()
    {
        var outcome = await KmsAttestationClient.VerifyAsync(Url, SimulatedRootTrusted);
        Assert.False(outcome.Trusted);
        Assert.Null(outcome.Attestation);
        Assert.Contains("measurement: no expected KMS measurement", Assert.Single(outcome.Failures));
    }

    [Fact]
    public async Task A_contradicting_measurement_policy_is_refused_before_the_kms_is_asked()
    {
        var outcome = await KmsAttestationClient.VerifyAsync(Url, SimulatedRootTrusted with { ExpectedMeasurements = [KmsPin], AnyMeasurement = true });
        Assert.False(outcome.Trusted);
        Assert.Null(outcome.Attestation);
        Assert.StartsWith("measurement: expected measurements and AnyMeasurement contradict", Assert.Single(outcome.Failures));
    }

    [Fact]
    public async Task One_of_several_expected_measurements_is_enough_and_the_old_single_value_still_counts()
    {
        var other = KmsMeasurementPin.Snp(SHA384.HashData("the next KMS build"u8));
        var set = await KmsAttestationClient.VerifyAsync(Url, SimulatedRootTrusted with { ExpectedMeasurements = [other, KmsPin] });
        Assert.True(set.Trusted, string.Join("; ", set.Failures));
        Assert.Equal([other.ToString(), KmsPin.ToString()], set.Record!.ExpectedMeasurements);

        var single = await KmsAttestationClient.VerifyAsync(Url, SimulatedRootTrusted with { ExpectedMeasurement = KmsPin });
        Assert.True(single.Trusted, string.Join("; ", single.Failures));
        var wrongSingle = await KmsAttestationClient.VerifyAsync(Url, SimulatedRootTrusted with { ExpectedMeasurement = other });
        Assert.False(wrongSingle.Trusted);
    }

    [Fact]
    public async Task Any_measurement_is_an_explicit_choice_kept_in_the_record()
    {
        var outcome = await KmsAttestationClient.VerifyAsync(Url, SimulatedRootTrusted with { AnyMeasurement = true });
        Assert.True(outcome.Trusted, string.Join("; ", outcome.Failures));
        Assert.True(outcome.Record!.AnyMeasurement);
        Assert.Empty(outcome.Record.ExpectedMeasurements);
    }

    [Fact]
    public async Task Vendor_roots_alone_refuse_a_simulated_kms()
    {
        var outcome = await KmsAttestationClient.VerifyAsync(Url, new KmsTrustOptions { ExpectedMeasurements = [KmsPin] });
        Assert.False(outcome.Trusted);
        Assert.Contains(outcome.Failures, f => f.StartsWith("snp.chain", StringComparison.Ordinal));
    }

    [Fact]
    public async Task Another_measurement_is_refused()
    {
        var outcome = await KmsAttestationClient.VerifyAsync(Url, SimulatedRootTrusted with { ExpectedMeasurements = [KmsMeasurementPin.Snp(new byte[48]), KmsMeasurementPin.Sgx(new byte[32])] });
        Assert.False(outcome.Trusted);
        Assert.Null(outcome.Record);
        Assert.Equal(
            $"measurement: the KMS attests {KmsPin}, which is not the expected snp:{new string('0', 96)} (MEASUREMENT differs)",
            Assert.Single(outcome.Failures));
    }

    /// <summary>
    /// A measurement names the code, not the operator: with the root CA fingerprint the operator published, only that
    /// root is pinned (hex in either case, colons allowed), and another root is refused naming both fingerprints.
    /// </summary>
    [Fact]
    public async Task An_expected_root_ca_fingerprint_pins_that_root_and_refuses_any_other()
    {
        var presented = (await KmsAttestationClient.VerifyAsync(Url, SimulatedRootTrusted with { ExpectedMeasurements = [KmsPin] })).Record!.RootCaSha256;
        var colons = string.Join(':', Convert.FromHexString(presented).Select(b => b.ToString("X2")));

        var matching = await KmsAttestationClient.VerifyAsync(Url, SimulatedRootTrusted with { ExpectedMeasurements = [KmsPin], ExpectedRootCaSha256 = colons });
        Assert.True(matching.Trusted, string.Join("; ", matching.Failures));
        Assert.Equal(presented, matching.Record!.RootCaSha256);

        var other = Convert.ToHexStringLower(SHA256.HashData("another KMS's root"u8));
        var mismatching = await KmsAttestationClient.VerifyAsync(Url, SimulatedRootTrusted with { ExpectedMeasurements = [KmsPin], ExpectedRootCaSha256 = other });
        Assert.False(mismatching.Trusted);
        Assert.Null(mismatching.Record);
        Assert.NotNull(mismatching.Attestation);
        Assert.StartsWith($"root_ca: the KMS presents the root CA sha256 {presented}, not the expected {other}", Assert.Single(mismatching.Failures));
    }

    /// <summary>A malformed fingerprint is refused before the KMS is asked, saying what a fingerprint is.</summary>
    [Theory]
    [InlineData("")]
    [InlineData("00")]
    [InlineData("not hex at all")]
    [InlineData("0011223344556677889900112233445566778899001122334455667788990011223344556677889900112233445566778899")]
    public async Task A_malformed_root_ca_fingerprint_is_refused_before_the_kms_is_asked(string fingerprint)
    {
        var outcome = await KmsAttestationClient.VerifyAsync(Url, SimulatedRootTrusted with { ExpectedMeasurements = [KmsPin], ExpectedRootCaSha256 = fingerprint });
        Assert.False(outcome.Trusted);
        Assert.Null(outcome.Attestation);
        Assert.Contains("is not a SHA-256 fingerprint", Assert.Single(outcome.Failures));
        Assert.Throws<FormatException>(() => KmsTrustOptions.ParseRootCaSha256(fingerprint));
    }

    [Fact]
    public void A_root_ca_fingerprint_reads_in_either_case_with_or_without_colons()
    {
        var hex = Convert.ToHexStringLower(SHA256.HashData("root"u8));
        Assert.Equal(hex, KmsTrustOptions.ParseRootCaSha256(hex.ToUpperInvariant()));
        Assert.Equal(hex, KmsTrustOptions.ParseRootCaSha256(" " + string.Join(':', Enumerable.Range(0, 32).Select(i => hex.Substring(i * 2, 2))) + "\n"));
    }

    [Fact]
    public async Task Plain_http_and_unreachable_kms_are_refused_with_a_reason()
    {
        var options = new KmsTrustOptions { ExpectedMeasurements = [KmsPin], Timeout = TimeSpan.FromSeconds(5) };
        Assert.Contains("https", (await KmsAttestationClient.VerifyAsync("http://127.0.0.1:1", options)).Failures[0]);
        var unreachable = await KmsAttestationClient.VerifyAsync("https://127.0.0.1:1", options);
        Assert.False(unreachable.Trusted);
        Assert.Contains("could not get", unreachable.Failures[0]);
    }

    [Fact]
    public void The_trust_store_keeps_one_record_per_kms_with_private_permissions()
    {
        var dir = Directory.CreateTempSubdirectory("morph-trust-").FullName;
        try
        {
            var store = new KmsTrustStore(Path.Combine(dir, "config", "kms-trust.json"));
            var record = new KmsTrustRecord
            {
                KmsUrl = "https://KMS.example:8200/",
                RootCaPem = "-----BEGIN CERTIFICATE-----",
                RootCaSha256 = "00",
                TlsSpkiSha256 = "00",
                Tee = "snp",
                Measurement = "00",
                Simulated = false,
                VerifiedAt = DateTimeOffset.UnixEpoch,
            };
            store.Save(record);
            store.Save(record with { Measurement = "11" });
            Assert.Equal("11", store.Find("https://kms.example:8200")!.Measurement);
            Assert.Single(store.All());
            Assert.Equal(UnixFileMode.UserRead | UnixFileMode.UserWrite, File.GetUnixFileMode(store.Path));

            // A record written before the measurement policy was recorded still reads, with neither set, and is refused for use.
            var before = File.ReadAllText(store.Path).Replace("\"expected_measurements\": [],", "").Replace("\"any_measurement\": false,", "");
            Assert.DoesNotContain("measurements", before);
            Assert.DoesNotContain("any_measurement", before);
            File.WriteAllText(store.Path, before);
            var old = store.Find("https://kms.example:8200")!;
            Assert.Empty(old.ExpectedMeasurements);
            Assert.False(old.AnyMeasurement);
            Assert.Contains("written before KMS measurements were required", old.UsabilityProblem());
        }
        finally
        {
            Directory.Delete(dir, recursive: true);
        }
    }
}
