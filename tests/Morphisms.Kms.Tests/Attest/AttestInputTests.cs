using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;
using Morphisms.Attestation;
using Morphisms.Testing;

namespace Morphisms.Kms.Tests.Attest;

/// <summary>Malformed logins and challenges: 4xx naming the field, the nonce untouched, never a 500.</summary>
public sealed class AttestInputTests : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("kms-attest-").FullName;

    [Fact]
    public async Task Malformed_login_fields_are_400s_that_name_the_field_and_leave_the_nonce_usable()
    {
        await using var kms = await TestKms.StartUnsealedAsync(SimulatedTees.TrustingSimulated);
        await AttestFlow.RegisterSignerAsync(kms.Client);
        using var instance = new FunctionInstance();
        var nonce = await AttestFlow.ChallengeAsync(kms.Client);
        var report = instance.SnpReport(nonce);
        var good = new Dictionary<string, object?>
        {
            ["function"] = "signer",
            ["tee"] = "snp",
            ["evidence"] = Convert.ToBase64String(report),
            ["nonce"] = Convert.ToBase64String(nonce),
            ["csr"] = instance.CsrPem,
        };

        var cases = new (string Field, object? Value, string Named)[]
        {
            ("function", null, "'function'"),
            ("function", "Signer!", "'function'"),
            ("tee", "sev", "'tee'"),
            ("tee", "sgx", "'evidence'"),
            ("evidence", "not base64 !!", "'evidence'"),
            ("evidence", Convert.ToBase64String(report[..1000]), "'evidence'"),
            ("evidence", Convert.ToBase64String([.. report, 0]), "'evidence'"),
            ("evidence", Convert.ToBase64String([9, .. report[1..]]), "'evidence'"),
            ("nonce", Convert.ToBase64String(nonce[..16]), "'nonce'"),
            ("nonce", "%%%", "'nonce'"),
            ("csr", "-----BEGIN CERTIFICATE REQUEST-----\nAAAA\n-----END CERTIFICATE REQUEST-----", "'csr'"),
            ("csr", TamperedCsr(instance.CsrPem), "'csr'"),
            ("csr", EcCsr(ECCurve.NamedCurves.nistP521), "'csr'"),
            ("csr", EcCsr(ECCurve.CreateFromFriendlyName("secp256k1")), "'csr'"),
            ("csr", RsaCsr(1024), "'csr'"),
            ("csr", UnknownCurveCsr(), "'csr'"),
            ("endorsements", Convert.ToBase64String("not a certificate"u8.ToArray()), "'endorsements'"),
            ("endorsements", ManyCertificatesPem(9), "more than 8 certificates"),
        };
        foreach (var (field, value, named) in cases)
        {
            var body = new Dictionary<string, object?>(good) { [field] = value };
            var result = (await kms.Client.SendAsync("POST", "auth/attest/login", body, token: "")).Expect(400);
            Assert.Contains(named, result.Errors.Single(), StringComparison.Ordinal);
        }

        (await kms.Client.SendAsync("POST", "auth/attest/login", "{\"function\": \"signer\", \"function\": \"x\"}", token: "")).Expect(400);
        (await kms.Client.SendAsync("POST", "auth/attest/login", "[1,2]", token: "")).Expect(400);

        // Nothing was spent: the real login still works with the same nonce.
        (await kms.Client.SendAsync("POST", "auth/attest/login", good, token: "")).Expect(200);
    }

    /// <summary>
    /// A CRL that only starts like PEM is never a 500. This KMS has collateral of its own (the simulated TEE's), which an
    /// unreadable offered item cannot outrank, so the login goes through on the KMS's CRL; a KMS without its own takes the
    /// offered item as it is, and the verifier's failed check for it is tested in CollateralVerifierTests.
    /// </summary>
    [Fact]
    public async Task A_dcap_crl_that_only_starts_like_pem_is_not_a_500_and_loses_to_the_kms_own_collateral()
    {
        await using var kms = await TestKms.StartUnsealedAsync(SimulatedTees.TrustingSimulated);
        await AttestFlow.RegisterSignerAsync(kms.Client);
        using var instance = new FunctionInstance();
        var nonce = await AttestFlow.ChallengeAsync(kms.Client);

        // "LQ==" is "-": the CRL parser used to hand PemEncoding's ArgumentException to the KMS.
        var endorsements = """{"root_ca_crl":"LQ=="}"""u8.ToArray();
        (await AttestFlow.LoginAsync(kms.Client, "sgx", instance.SgxQuote(nonce), nonce, instance.CsrPem, endorsements: endorsements)).Expect(200);
    }

    /// <summary>
    /// A DCAP collateral bundle's chains are capped as SNP endorsements are: without, a megabyte of forged "TCB Signing"
    /// certificates cost the KMS a parse and a signature check each, per login.
    /// </summary>
    [Fact]
    public async Task A_dcap_bundle_with_more_than_eight_certificates_is_a_400_naming_the_limit()
    {
        await using var kms = await TestKms.StartUnsealedAsync(SimulatedTees.TrustingSimulated);
        await AttestFlow.RegisterSignerAsync(kms.Client);
        using var instance = new FunctionInstance();
        var nonce = await AttestFlow.ChallengeAsync(kms.Client);
        byte[] Bundle(int count) => System.Text.Encoding.UTF8.GetBytes(System.Text.Json.JsonSerializer.Serialize(new Dictionary<string, string>
        {
            ["root_ca_crl"] = "",
            ["tcb_signing_chain"] = System.Text.Encoding.ASCII.GetString(Convert.FromBase64String(ManyCertificatesPem(count))),
        }));

        var refused = (await AttestFlow.LoginAsync(kms.Client, "sgx", instance.SgxQuote(nonce), nonce, instance.CsrPem, endorsements: Bundle(9))).Expect(400);
        Assert.Contains("'endorsements'", refused.Errors.Single(), StringComparison.Ordinal);
        Assert.Contains("tcb_signing_chain: the bundle's chains hold more than 8 certificates (CollateralBundle.MaxCertificates", refused.Errors.Single(), StringComparison.Ordinal);

        // Eight are read (the same one eight times, here), and the nonce was not spent by the refusal.
        (await AttestFlow.LoginAsync(kms.Client, "sgx", instance.SgxQuote(nonce), nonce, instance.CsrPem, endorsements: Bundle(8))).Expect(200);
    }

    [Fact]
    public async Task Challenge_input_is_checked_and_a_flood_of_challenges_does_not_stop_a_real_login()
    {
        await using var kms = await TestKms.StartUnsealedAsync(o => SimulatedTees.TrustingSimulated(o) with
        {
            Attestation = SimulatedTees.TrustingSimulated(o).Attestation with { MaxSpentNonces = 2 },
        });
        await AttestFlow.RegisterSignerAsync(kms.Client);
        Assert.Contains("'function'", (await kms.Client.PostAsync("auth/attest/challenge", new { }, token: "")).Expect(400).Errors.Single(), StringComparison.Ordinal);
        Assert.Contains("'function'", (await kms.Client.PostAsync("auth/attest/challenge", new { function = "../sys" }, token: "")).Expect(400).Errors.Single(), StringComparison.Ordinal);

        var data = (await kms.Client.PostAsync("auth/attest/challenge", new { function = "signer" }, token: "")).Expect(200).Data;
        Assert.Equal(56, Convert.FromBase64String(data["nonce"]!.GetValue<string>()).Length);
        Assert.Equal("2026-11-22T12:01:00.0000000Z", data["expires_at"]!.GetValue<string>());

        // Ten times the limit in unspent challenges: nothing is held for them, so the real instance still logs in.
        for (var i = 0; i < 20; i++)
        {
            await AttestFlow.ChallengeAsync(kms.Client);
        }

        using var instance = new FunctionInstance();
        (await LoginAsync(kms, instance, await AttestFlow.ChallengeAsync(kms.Client))).Expect(200);
        (await LoginAsync(kms, instance, await AttestFlow.ChallengeAsync(kms.Client))).Expect(200);

        // Two spent nonces fill the set: the next login waits (429, its nonce unspent) until they expire.
        kms.Time.Advance(TimeSpan.FromSeconds(30));
        var waiting = await AttestFlow.ChallengeAsync(kms.Client);
        var busy = (await LoginAsync(kms, instance, waiting)).Expect(429);
        Assert.Contains("retry", busy.Errors.Single(), StringComparison.Ordinal);
        kms.Time.Advance(TimeSpan.FromSeconds(31));
        (await LoginAsync(kms, instance, waiting)).Expect(200);
        var metrics = (await kms.Client.GetAsync("sys/metrics?format=prometheus")).Expect(200).Raw;
        Assert.Contains("kms_attest_logins_total{tee=\"snp\",outcome=\"busy\"} 1", metrics, StringComparison.Ordinal);
        Assert.Contains("kms_attest_spent_nonces 1", metrics, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Sealed_kms_answers_503_and_logins_are_counted_and_audited()
    {
        var audit = Path.Combine(_dir, "audit.log");
        await using var kms = await TestKms.StartUnsealedAsync(o => SimulatedTees.TrustingSimulated(o) with { AuditLogPath = audit });
        await AttestFlow.RegisterSignerAsync(kms.Client);
        using var instance = new FunctionInstance();
        var nonce = await AttestFlow.ChallengeAsync(kms.Client);
        var login = (await AttestFlow.LoginAsync(kms.Client, "snp", instance.SnpReport(nonce), nonce, instance.CsrPem)).Expect(200);
        var token = login.Auth["client_token"]!.GetValue<string>();
        (await AttestFlow.LoginAsync(kms.Client, "snp", instance.SnpReport(nonce), nonce, instance.CsrPem)).Expect(403);
        (await AttestFlow.LoginAsync(kms.Client, "tdx", [1, 2, 3], nonce, instance.CsrPem)).Expect(400);

        var metrics = (await kms.Client.GetAsync("sys/metrics?format=prometheus")).Expect(200).Raw;
        Assert.Contains("kms_attest_logins_total{tee=\"snp\",outcome=\"accepted\"} 1", metrics, StringComparison.Ordinal);
        Assert.Contains("kms_attest_logins_total{tee=\"snp\",outcome=\"refused\"} 1", metrics, StringComparison.Ordinal);
        Assert.Contains("kms_attest_logins_total{tee=\"tdx\",outcome=\"invalid\"} 1", metrics, StringComparison.Ordinal);
        Assert.Contains("kms_attest_challenges_total{outcome=\"issued\"} 1", metrics, StringComparison.Ordinal);
        Assert.Contains("kms_attest_spent_nonces 1", metrics, StringComparison.Ordinal); // the replay added nothing

        var log = await File.ReadAllTextAsync(audit);
        Assert.Contains("\"type\":\"attest-login\"", log, StringComparison.Ordinal);
        Assert.Contains("\"outcome\":\"accepted\"", log, StringComparison.Ordinal);
        Assert.Contains("\"outcome\":\"refused\"", log, StringComparison.Ordinal);
        Assert.Contains("nonce already used", log, StringComparison.Ordinal);
        Assert.Contains(Hex.Of(FunctionInstance.SnpMeasurement), log, StringComparison.Ordinal);
        Assert.Contains("\"simulated\":true", log, StringComparison.Ordinal);
        Assert.DoesNotContain(token, log, StringComparison.Ordinal);

        (await kms.Client.PutAsync("sys/seal")).Expect(204);
        (await kms.Client.PostAsync("auth/attest/challenge", new { function = "signer" }, token: "")).Expect(503);
        (await AttestFlow.LoginAsync(kms.Client, "snp", instance.SnpReport(nonce), nonce, instance.CsrPem)).Expect(503);
    }

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    private static Task<VaultResult> LoginAsync(TestKms kms, FunctionInstance instance, byte[] nonce) =>
        AttestFlow.LoginAsync(kms.Client, "snp", instance.SnpReport(nonce), nonce, instance.CsrPem);

    /// <summary>Base64 of a PEM holding <paramref name="count"/> copies of one self-signed certificate.</summary>
    private static string ManyCertificatesPem(int count)
    {
        using var key = ECDsa.Create(ECCurve.NamedCurves.nistP256);
        using var certificate = new CertificateRequest("CN=many", key, HashAlgorithmName.SHA256).CreateSelfSigned(DateTimeOffset.UnixEpoch, DateTimeOffset.UnixEpoch.AddYears(100));
        return Convert.ToBase64String(System.Text.Encoding.ASCII.GetBytes(string.Concat(Enumerable.Repeat(certificate.ExportCertificatePem() + "\n", count))));
    }

    private static string EcCsr(ECCurve curve)
    {
        using var key = ECDsa.Create(curve);
        return new CertificateRequest("CN=signer", key, HashAlgorithmName.SHA256).CreateSigningRequestPem();
    }

    private static string RsaCsr(int bits)
    {
        using var key = RSA.Create(bits);
        return new CertificateRequest("CN=signer", key, HashAlgorithmName.SHA256, RSASignaturePadding.Pkcs1).CreateSigningRequestPem();
    }

    /// <summary>A valid P-256 CSR with its curve renamed to one no library knows: loading it fails on the key, not the signature.</summary>
    private static string UnknownCurveCsr()
    {
        var pem = EcCsr(ECCurve.NamedCurves.nistP256);
        var der = Convert.FromBase64String(pem[PemEncoding.Find(pem).Base64Data]);
        return PemEncoding.WriteString("CERTIFICATE REQUEST", TestCertificates.OnUnknownCurve(der));
    }

    /// <summary>The CSR with one base64 character of its signature changed: still PEM and DER, no longer signed.</summary>
    private static string TamperedCsr(string pem)
    {
        var lines = pem.Split('\n');
        var last = Array.FindLastIndex(lines, l => l.Length > 20 && !l.StartsWith('-'));
        var chars = lines[last].ToCharArray();
        chars[10] = chars[10] == 'A' ? 'B' : 'A';
        lines[last] = new string(chars);
        return string.Join('\n', lines);
    }
}
