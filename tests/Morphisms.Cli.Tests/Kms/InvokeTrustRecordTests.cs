namespace Morphisms.Cli.Tests.Kms;

/// <summary>
/// <c>morph invoke</c> uses a stored KMS trust record only when it says, completely, how the KMS's measurement was
/// checked; an older record is refused before anything is sent, with the command that trusts the KMS again.
/// </summary>
[Collection(MorphismsHomeCollection.Name)]
public sealed class InvokeTrustRecordTests
{
    internal const string KmsUrl = "https://kms.example:8200";

    private static readonly string Mrtd = new('a', 96);

    /// <summary>A record as the version before required measurements wrote it: neither expected_measurements nor any_measurement.</summary>
    [Fact]
    public Task A_record_from_before_measurements_were_required_is_refused() =>
        WithRecordAsync("""
            "tee": "snp", "measurement": "00", "simulated": false
            """, outcome =>
        {
            Assert.Equal(ExitCodes.UsageOrInput, outcome.ExitCode);
            Assert.Contains($"the trust record for {KmsUrl} was written before KMS measurements were required", outcome.Stderr);
            Assert.Contains($"morph kms trust {KmsUrl} --expect-measurement snp:MEASUREMENT", outcome.Stderr);
            ErrorPathTests.AssertNoStackTrace(outcome);
        });

    /// <summary>A record of the previous version for a TDX KMS: its expected value is the bare MRTD.</summary>
    [Fact]
    public Task A_tdx_record_pinned_by_a_bare_mrtd_is_refused() =>
        WithRecordAsync($"""
            "tee": "tdx", "measurement": "{Mrtd}", "expected_measurements": ["{Mrtd}"], "any_measurement": false, "simulated": false
            """, outcome =>
        {
            Assert.Equal(ExitCodes.UsageOrInput, outcome.ExitCode);
            Assert.Contains("pinned a TDX KMS by MRTD alone", outcome.Stderr);
            Assert.Contains("--expect-measurement tdx:MRTD/RTMR0/RTMR1/RTMR2/RTMR3", outcome.Stderr);
        });

    /// <summary>A record of the previous version for an SNP KMS (bare MEASUREMENT) is still used: invoke goes on to connect.</summary>
    [Fact]
    public Task A_snp_record_with_a_bare_measurement_is_still_used() =>
        WithRecordAsync($"""
            "tee": "snp", "measurement": "{Mrtd}", "expected_measurements": ["{Mrtd}"], "any_measurement": false, "simulated": false
            """, outcome =>
        {
            Assert.DoesNotContain("trust record", outcome.Stderr);
            Assert.Equal(ExitCodes.Rejected, outcome.ExitCode); // nothing listens at the gateway
        });

    /// <summary>Runs <c>morph invoke signer</c> (plus <paramref name="extra"/>) under a trust record with <paramref name="fields"/>.</summary>
    internal static async Task WithRecordAsync(string fields, Action<MorphRunner.Outcome> check, params string[] extra) =>
        // Port 9 (discard) on loopback: nothing answers, so only the trust decision is under test.
        check(await RunWithRecordAsync(fields, ["invoke", "signer", "--kms", KmsUrl, "--gateway", "127.0.0.1:9", "--domain", "fn.example", .. extra]));

    /// <summary>Runs <c>morph ARGS</c> under a trust record for <see cref="KmsUrl"/> with <paramref name="fields"/>.</summary>
    internal static async Task<MorphRunner.Outcome> RunWithRecordAsync(string fields, params string[] args)
    {
        var home = Directory.CreateTempSubdirectory("morph-home-").FullName;
        var previous = Environment.GetEnvironmentVariable("MORPHISMS_HOME");
        Environment.SetEnvironmentVariable("MORPHISMS_HOME", home);
        try
        {
            using var ca = TestCertificates.Ca("CN=old KMS root");
            var pem = ca.ExportCertificatePem().ReplaceLineEndings("\\n");
            Directory.CreateDirectory(Path.Combine(home, "config"));
            await File.WriteAllTextAsync(Path.Combine(home, "config", "kms-trust.json"), $$"""
                { "{{KmsUrl}}": { "kms_url": "{{KmsUrl}}", "root_ca_pem": "{{pem}}", "root_ca_sha256": "00", "tls_spki_sha256": "00",
                  {{fields}}, "verified_at": "2025-01-01T00:00:00+00:00" } }
                """);

            return await MorphRunner.RunAsync(args);
        }
        finally
        {
            Environment.SetEnvironmentVariable("MORPHISMS_HOME", previous);
            Directory.Delete(home, recursive: true);
        }
    }
}
