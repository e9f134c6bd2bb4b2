using System.Net.Security;
using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;
using Morphisms.Attestation;
using Morphisms.Attestation.Simulated;
using Morphisms.Attestation.Trust;
using Morphisms.Client.Trust;
using Morphisms.Kms;
using Morphisms.Kms.SelfAttestation;

namespace Morphisms.Client.Tests;

/// <summary>
/// A KMS as it runs in a Kata confidential VM, simulated: its SNP-format report shows the guest image's MEASUREMENT,
/// which every pod of the runtime class shares, and its initdata digest in HOST_DATA.
/// </summary>
public sealed class KataKmsFixture() : SimulatedKmsFixture(tee => new KmsAttestationOptions { SimulatedTee = tee, TrustSimulatedTee = true, EvidenceProvider = new KataEvidence(tee) })
{
    public static readonly byte[] GuestImage = SHA384.HashData("the Kata guest image"u8);
    public static readonly byte[] Initdata = SHA256.HashData("the KMS's initdata.toml"u8);

    private sealed class KataEvidence(SimulatedTeeAuthority tee) : IKmsEvidenceProvider
    {
        public Task<KmsEvidence> GetEvidenceAsync(byte[] reportData, CancellationToken cancellationToken) =>
            Task.FromResult(new KmsEvidence(TeeType.Snp,
                tee.CreateSnpReport(new SimulatedSnpReportRequest { ReportData = reportData, Measurement = GuestImage, HostData = Initdata }),
                tee.Vcek.RawData, Simulated: true));
    }
}

/// <summary>
/// Trusting a KMS in a Kata VM: a pin of the guest image alone still trusts it (existing deployments keep working) but
/// the outcome warns that it binds no workload and names the full pin; the full pin trusts it without a warning, and a
/// wrong HOST_DATA is refused naming it.
/// </summary>
public sealed class KataKmsAttestationTests(KataKmsFixture fixture) : IClassFixture<KataKmsFixture>
{
    private static readonly string LaunchPin = "snp:" + Convert.ToHexStringLower(KataKmsFixture.GuestImage);
    private static readonly string FullPin = $"{LaunchPin},host_data={Convert.ToHexStringLower(KataKmsFixture.Initdata)}";

    private string Url => fixture.Kms.BaseAddress!.ToString();

    private KmsTrustOptions Expecting(params string[] pins) =>
        new() { Anchors = fixture.Tee.TrustedWith(TrustAnchors.Vendor), ExpectedMeasurements = [.. pins.Select(KmsMeasurementPin.Parse)] };

    [Fact]
    public async Task A_guest_image_pin_trusts_the_kms_with_a_warning_naming_the_full_pin()
    {
        var outcome = await KmsAttestationClient.VerifyAsync(Url, Expecting(LaunchPin));

        Assert.True(outcome.Trusted, string.Join("; ", outcome.Failures));
        Assert.Equal(FullPin, outcome.Record!.Measurement);
        Assert.Equal([LaunchPin], outcome.Record.ExpectedMeasurements);
        Assert.Null(outcome.Record.UsabilityProblem());
        var warning = Assert.Single(outcome.Warnings);
        Assert.Contains("does NOT bind the KMS workload", warning);
        Assert.EndsWith($"pin {FullPin} instead", warning);
    }

    [Fact]
    public async Task The_full_pin_trusts_the_kms_without_a_warning()
    {
        var outcome = await KmsAttestationClient.VerifyAsync(Url, Expecting(FullPin));

        Assert.True(outcome.Trusted, string.Join("; ", outcome.Failures));
        Assert.Empty(outcome.Warnings);
        Assert.Equal([FullPin], outcome.Record!.ExpectedMeasurements);
        Assert.Equal(FullPin, outcome.Record.Measurement);
    }

    /// <summary>What an impostor pod on the same guest image is, seen from the pin of the real KMS: refused on HOST_DATA.</summary>
    [Fact]
    public async Task A_pin_of_other_initdata_is_refused_naming_host_data()
    {
        var other = $"{LaunchPin},host_data={Convert.ToHexStringLower(SHA256.HashData("another initdata"u8))}";
        var outcome = await KmsAttestationClient.VerifyAsync(Url, Expecting(other));

        Assert.False(outcome.Trusted);
        Assert.Empty(outcome.Warnings);
        Assert.Equal($"measurement: the KMS attests {FullPin}, which is not the expected {other} (HOST_DATA differs)", Assert.Single(outcome.Failures));
    }
}

/// <summary>
/// <see cref="KmsTlsPin"/> lets a redirect reach another node's TLS key when that node attested a measurement the record
/// expects. Records now carry HOST_DATA in what a node attested; a pin from before names only the guest image and must
/// still accept such a node, while a pin with HOST_DATA accepts only a node that attested the same.
/// </summary>
public sealed class KmsTlsPinWorkloadTests : IDisposable
{
    private static readonly string Launch = "snp:" + new string('0', 96);
    private static readonly string Bound = Launch + ",host_data=" + new string('a', 64);
    private static readonly string OtherBound = Launch + ",host_data=" + new string('b', 64);

    private readonly X509Certificate2 _address = SelfSigned("address");
    private readonly X509Certificate2 _node = SelfSigned("node");

    public void Dispose()
    {
        _address.Dispose();
        _node.Dispose();
    }

    [Theory]
    [InlineData("launch", "bound", true)]
    [InlineData("launch", "launch", true)]
    [InlineData("bound", "bound", true)]
    [InlineData("bound", "launch", false)]
    [InlineData("bound", "other", false)]
    public void A_node_counts_when_it_attested_every_component_the_record_expects(string expected, string nodeAttested, bool accepted)
    {
        var record = Record("https://kms-a:8200", _address, Text(expected), expected: Text(expected));
        var node = Record("https://kms-b:8200", _node, Text(nodeAttested), expected: Text(nodeAttested));

        var pin = KmsTlsPin.For(record, [record, node]);

        Assert.True(pin.Validate(_address, SslPolicyErrors.None));
        Assert.Equal(accepted, pin.Validate(_node, SslPolicyErrors.None));
    }

    private static string Text(string name) => name switch { "launch" => Launch, "bound" => Bound, _ => OtherBound };

    private static KmsTrustRecord Record(string url, X509Certificate2 tls, string measurement, string expected) => new()
    {
        KmsUrl = url,
        RootCaPem = "unused",
        RootCaSha256 = new string('1', 64),
        TlsSpkiSha256 = Convert.ToHexStringLower(SHA256.HashData(tls.PublicKey.ExportSubjectPublicKeyInfo())),
        Tee = "snp",
        Measurement = measurement,
        ExpectedMeasurements = [expected],
        Simulated = false,
        RootCaKeyProven = true,
        VerifiedAt = DateTimeOffset.UtcNow,
    };

    private static X509Certificate2 SelfSigned(string name)
    {
        using var key = ECDsa.Create(ECCurve.NamedCurves.nistP256);
        var request = new CertificateRequest($"CN={name}", key, HashAlgorithmName.SHA256);
        return request.CreateSelfSigned(DateTimeOffset.UtcNow.AddMinutes(-1), DateTimeOffset.UtcNow.AddHours(1));
    }
}
