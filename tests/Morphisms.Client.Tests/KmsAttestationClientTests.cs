using System.Security.Cryptography;
using Morphisms.Attestation.Simulated;
using Morphisms.Attestation.Trust;
using Morphisms.Client.Trust;
using Morphisms.Kms;

namespace Morphisms.Client.Tests;

/// <summary>One dev KMS (simulated TEE, TLS on loopback) shared by the tests: key generation is the slow part.</summary>
public sealed class DevKmsFixture : IAsyncLifetime
{
    public static readonly byte[] KmsMeasurement = SHA384.HashData("the KMS's own build"u8);

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
            Attestation = new KmsAttestationOptions { SimulatedTee = Tee, TrustSimulatedTee = true, SimulatedMeasurement = KmsMeasurement },
        });
        await Kms.StartAsync();
    }

    public async Task DisposeAsync()
    {
        await Kms.DisposeAsync();
        Tee.Dispose();
    }
}

/// <summary>Attesting a real KMS before trusting it.</summary>
public sealed class KmsAttestationClientTests(DevKmsFixture fixture) : IClassFixture<DevKmsFixture>
{
    private static readonly byte[] KmsMeasurement = DevKmsFixture.KmsMeasurement;
    private readonly SimulatedTeeAuthority _tee = fixture.Tee;
    private readonly KmsServer _kms = fixture.Kms;

    private string Url => _kms.BaseAddress!.ToString();

    [Fact]
    public async Task A_kms_whose_evidence_binds_its_tls_key_and_root_ca_is_pinned()
    {
        var outcome = await KmsAttestationClient.VerifyAsync(Url, new KmsTrustOptions { Anchors = _tee.TrustedWith(TrustAnchors.Vendor), ExpectedMeasurement = KmsMeasurement });
        Assert.True(outcome.Trusted, string.Join("; ", outcome.Failures));
        var record = outcome.Record!;
        Assert.True(record.Simulated);
        Assert.Equal(Convert.ToHexStringLower(KmsMeasurement), record.Measurement);
        Assert.Equal(Convert.ToHexStringLower(SHA256.HashData(_kms.TlsCertificate!.PublicKey.ExportSubjectPublicKeyInfo())), record.TlsSpkiSha256);
        Assert.Contains("BEGIN CERTIFICATE", record.RootCaPem);
    }

    [Fact]
    public async Task Vendor_roots_alone_refuse_a_simulated_kms()
    {
        var outcome = await KmsAttestationClient.VerifyAsync(Url, new KmsTrustOptions());
        Assert.False(outcome.Trusted);
        Assert.Contains(outcome.Failures, f => f.StartsWith("snp.chain", StringComparison.Ordinal));
    }

    [Fact]
    public async Task Another_measurement_is_refused()
    {
        var outcome = await KmsAttestationClient.VerifyAsync(Url, new KmsTrustOptions { Anchors = _tee.TrustedWith(TrustAnchors.Vendor), ExpectedMeasurement = new byte[48] });
        Assert.False(outcome.Trusted);
        Assert.Contains(outcome.Failures, f => f.Contains("measurement", StringComparison.Ordinal));
    }

    [Fact]
    public async Task Plain_http_and_unreachable_kms_are_refused_with_a_reason()
    {
        Assert.Contains("https", (await KmsAttestationClient.VerifyAsync("http://127.0.0.1:1", new KmsTrustOptions())).Failures[0]);
        var unreachable = await KmsAttestationClient.VerifyAsync("https://127.0.0.1:1", new KmsTrustOptions { Timeout = TimeSpan.FromSeconds(5) });
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
        }
        finally
        {
            Directory.Delete(dir, recursive: true);
        }
    }
}
