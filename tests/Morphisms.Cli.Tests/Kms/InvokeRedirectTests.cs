using System.Net;
using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;
using Morphisms.Attestation.Identity;
using Morphisms.Cli.Commands.Invoke;
using Morphisms.Client.Trust;

namespace Morphisms.Cli.Tests.Kms;

/// <summary>
/// <c>morph invoke</c> does not follow a function's redirect: the body already reached the verified function, so its
/// 3xx is reported as its answer (status and Location, exit 1 like any non-2xx), not as a refused certificate that
/// "sent nothing".
/// </summary>
public sealed class InvokeRedirectTests
{
    private const string Domain = "fn.example";

    [Fact]
    public async Task A_307_to_another_host_is_reported_as_the_functions_answer_and_not_followed()
    {
        using var root = TestCertificates.Ca("CN=test KMS root");
        using var leaf = FunctionLeaf(root, "signer", $"signer.{Domain}");
        await using var function = new FakeHttpServer(
            _ => new FakeHttpServer.Response(307, "moved", new Dictionary<string, string> { ["Location"] = "https://elsewhere.example/steal" }),
            certificate: leaf);
        var trust = new KmsTrustRecord
        {
            KmsUrl = "https://kms.test",
            RootCaPem = root.ExportCertificatePem(),
            RootCaSha256 = Convert.ToHexStringLower(SHA256.HashData(root.RawData)),
            TlsSpkiSha256 = new string('0', 64),
            Tee = "snp",
            Measurement = "snp:" + new string('0', 96),
            ExpectedMeasurements = ["snp:" + new string('0', 96)],
            Simulated = true,
            VerifiedAt = DateTimeOffset.UtcNow,
        };
        // The KMS is a name here, with no CRL to fetch: revocation is not what this test is about (FunctionRevocationTests).
        var request = new InvokeRequest("signer", Domain, new IPEndPoint(IPAddress.Loopback, function.Address.Port), "/sign", "secret"u8.ToArray(), null, NoRevocationCheck: true);
        var stdout = new StringWriter();
        var stderr = new StringWriter();

        var exit = await InvokeCommand.RunAsync(trust, request, showAttestation: false, stdout, stderr, CancellationToken.None);

        Assert.Equal(ExitCodes.Rejected, exit);
        Assert.Contains("morph: signer answered 307, redirecting to https://elsewhere.example/steal (not followed)", stderr.ToString());
        Assert.DoesNotContain("nothing was sent", stderr.ToString());
        Assert.Equal("moved\n", stdout.ToString().ReplaceLineEndings("\n"));
        var only = Assert.Single(function.Requests);
        Assert.Equal("secret", only.Body);
    }

    /// <summary>A function certificate as attest-login issues it, straight under <paramref name="root"/>, with its key.</summary>
    internal static X509Certificate2 FunctionLeaf(X509Certificate2 root, string function, string host)
    {
        using var key = ECDsa.Create(ECCurve.NamedCurves.nistP256);
        var request = new CertificateRequest($"CN={host}", key, HashAlgorithmName.SHA256);
        var san = new SubjectAlternativeNameBuilder();
        san.AddDnsName(host);
        request.CertificateExtensions.Add(san.Build());
        request.CertificateExtensions.Add(new X509EnhancedKeyUsageExtension([new Oid("1.3.6.1.5.5.7.3.1")], false));
        var measurement = new byte[48];
        request.CertificateExtensions.Add(new AttestedIdentityExtension("snp", measurement, function, 1, SHA256.HashData(measurement), true).ToExtension());
        using var issued = request.Create(root, DateTimeOffset.UtcNow.AddMinutes(-5), DateTimeOffset.UtcNow.AddHours(1), RandomNumberGenerator.GetBytes(8));
        using var withKey = issued.CopyWithPrivateKey(key);
        return X509CertificateLoader.LoadPkcs12(withKey.Export(X509ContentType.Pkcs12), null);
    }
}
