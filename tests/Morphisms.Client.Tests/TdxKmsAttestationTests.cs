using System.Net.Security;
using System.Text;
using System.Text.Json;
using Morphisms.Attestation;
using Morphisms.Attestation.Abi.Dcap;
using Morphisms.Client.Trust;

namespace Morphisms.Client.Tests;

/// <summary>
/// <see cref="KmsAttestationClient"/> against a stand-in KMS that serves a real TDX quote. The quote binds none of this
/// test's keys, so the KMS is never trusted here; what is checked is the measurement verdict among the failures: the
/// right MRTD with another RTMR is a measurement failure naming the register, the full set is none.
/// </summary>
public sealed class TdxKmsAttestationTests
{
    private static readonly byte[] Quote = TestVectors.Root is null ? [] : TestVectors.Read("tdx", "gotdxguest_emr_90c06f000000_v5_quote.bin");

    [VectorFact]
    public async Task A_tdx_kms_with_the_expected_mrtd_but_another_rtmr_fails_the_measurement()
    {
        var claims = (TdxClaims)EvidenceVerifier.Parse(TeeType.Tdx, Quote);
        var rtmr2 = claims.Rtmr2.ToArray();
        rtmr2[^1] ^= 0x80;
        var pin = KmsMeasurementPin.Tdx(claims.MrTd.Span, claims.Rtmr0.Span, claims.Rtmr1.Span, rtmr2, claims.Rtmr3.Span);

        var failures = await FailuresAsync(pin);

        var measurement = Assert.Single(failures, f => f.StartsWith("measurement:", StringComparison.Ordinal));
        Assert.Contains("(RTMR2 differs)", measurement);
    }

    [VectorFact]
    public async Task A_tdx_kms_with_every_expected_register_passes_the_measurement()
    {
        var claims = (TdxClaims)EvidenceVerifier.Parse(TeeType.Tdx, Quote);

        var failures = await FailuresAsync(KmsMeasurementPin.Of(claims));

        Assert.NotEmpty(failures); // the binding: this quote was not made for our nonce and key
        Assert.DoesNotContain(failures, f => f.StartsWith("measurement:", StringComparison.Ordinal));
    }

    /// <summary>The bare MRTD (read as SNP, as untyped 96-digit values are) does not pin a TDX KMS.</summary>
    [VectorFact]
    public async Task A_tdx_kms_is_not_pinned_by_its_bare_mrtd()
    {
        var claims = (TdxClaims)EvidenceVerifier.Parse(TeeType.Tdx, Quote);

        var failures = await FailuresAsync(KmsMeasurementPin.Parse(Convert.ToHexStringLower(claims.MrTd.Span)));

        Assert.Contains(failures, f => f.StartsWith("measurement: the KMS attests with tdx", StringComparison.Ordinal));
    }

    private static async Task<IReadOnlyList<string>> FailuresAsync(KmsMeasurementPin pin)
    {
        using var certificate = TestCertificates.Ca("CN=stand-in KMS");
        var body = JsonSerializer.SerializeToUtf8Bytes(new
        {
            data = new { tee = "tdx", evidence = Convert.ToBase64String(Quote), root_ca = certificate.ExportCertificatePem() },
        });
        var head = Encoding.ASCII.GetBytes($"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {body.Length}\r\nConnection: close\r\n\r\n");
        await using var server = new TlsTestServer(SslStreamCertificateContext.Create(certificate, null), _ => [.. head, .. body]);

        var outcome = await KmsAttestationClient.VerifyAsync(
            $"https://127.0.0.1:{server.Endpoint.Port}",
            new KmsTrustOptions { ExpectedMeasurements = [pin], Timeout = TimeSpan.FromSeconds(10) });

        Assert.False(outcome.Trusted);
        Assert.NotNull(outcome.Attestation); // the evidence was obtained and verified, so the verdict below is about it
        return outcome.Failures;
    }
}
