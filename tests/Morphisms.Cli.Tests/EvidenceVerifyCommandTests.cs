using System.Text.Json;

namespace Morphisms.Cli.Tests;

public class EvidenceVerifyCommandTests
{
    private static string V(params string[] parts) => TestVectors.Path(parts);

    [VectorFact]
    public async Task Authentic_snp_report_exits_0_with_the_json_contract_fields()
    {
        var outcome = await MorphRunner.RunAsync("evidence", "verify", "--tee", "snp",
            "--evidence", V("snp", "trustee_milan_v2_report.bin"), "--vcek", V("snp", "trustee_milan_vcek.der"), "--json");
        Assert.Equal(ExitCodes.Ok, outcome.ExitCode);
        using var json = JsonDocument.Parse(outcome.Stdout);
        var root = json.RootElement;
        Assert.Equal("affirming", root.GetProperty("status").GetString());
        Assert.Equal("snp", root.GetProperty("tee").GetString());
        Assert.Equal("a1f3930413247bb38cfc171579ea3c12d5fe4901f0c792f63fd75d98f1ef827c23500644e0e692e6be917f9050d3d38c", root.GetProperty("measurement").GetString());
        Assert.StartsWith("ec6c52d7533cc2c4", root.GetProperty("report_data").GetString());
        Assert.Equal(JsonValueKind.Null, root.GetProperty("tcb_status").ValueKind);
        Assert.Equal(0, root.GetProperty("failures").GetArrayLength());
    }

    [VectorFact]
    public async Task Expected_measurement_is_enforced()
    {
        var outcome = await MorphRunner.RunAsync("evidence", "verify", "--tee", "snp",
            "--evidence", V("snp", "trustee_milan_v2_report.bin"), "--vcek", V("snp", "trustee_milan_vcek.der"),
            "--expect-measurement", new string('0', 96), "--json");
        Assert.Equal(ExitCodes.Rejected, outcome.ExitCode);
        Assert.Contains("measurement", outcome.Stdout);
    }

    [VectorFact]
    public async Task Expected_measurement_may_be_typed_as_other_commands_print_it_and_its_tee_must_be_the_evidence_s()
    {
        const string Measured = "a1f3930413247bb38cfc171579ea3c12d5fe4901f0c792f63fd75d98f1ef827c23500644e0e692e6be917f9050d3d38c";
        string[] args = ["evidence", "verify", "--tee", "snp", "--evidence", V("snp", "trustee_milan_v2_report.bin"), "--vcek", V("snp", "trustee_milan_vcek.der")];

        Assert.Equal(ExitCodes.Ok, (await MorphRunner.RunAsync([.. args, "--expect-measurement", "snp:" + Measured])).ExitCode);
        Assert.Equal(ExitCodes.Rejected, (await MorphRunner.RunAsync([.. args, "--expect-measurement", "snp:" + new string('0', 96)])).ExitCode);

        // The same bytes typed for another TEE: a usage error naming both, before anything is verified.
        var otherTee = await MorphRunner.RunAsync([.. args, "--expect-measurement", "tdx:" + Measured]);
        Assert.Equal(ExitCodes.UsageOrInput, otherTee.ExitCode);
        Assert.Contains("--expect-measurement is a tdx measurement, but --tee is snp", otherTee.Stderr);

        var notATee = await MorphRunner.RunAsync([.. args, "--expect-measurement", "tpm:" + Measured]);
        Assert.Equal(ExitCodes.UsageOrInput, notATee.ExitCode);
        Assert.Contains("'tpm:' is not a TEE", notATee.Stderr);
    }

    [VectorFact]
    public async Task Debug_policy_is_rejected_unless_allowed_loudly()
    {
        string[] args = ["evidence", "verify", "--tee", "snp", "--evidence", V("snp", "gosevguest_milan_v2_report.bin"), "--vcek", V("snp", "gosevguest_milan_vcek.der")];
        var refused = await MorphRunner.RunAsync(args);
        Assert.Equal(ExitCodes.Rejected, refused.ExitCode);
        Assert.Contains("debug", refused.Stdout);

        var allowed = await MorphRunner.RunAsync([.. args, "--allow-debug"]);
        Assert.Equal(ExitCodes.Ok, allowed.ExitCode);
        Assert.Contains("warning", allowed.Stderr);
    }

    [VectorFact]
    public async Task Sgx_quote_with_collateral_directory_at_its_time_reports_the_tcb_status()
    {
        var dir = CollateralDirectory(
            V("sgx", "automata_sgx_tcbinfo_v3_00606a000000_20250815.json"), V("sgx", "automata_sgx_qe_identity_20250815.json"),
            V("sgx", "automata_pck_platform_crl_20250815.der"), V("sgx", "automata_root_ca_crl_20250320.der"));
        try
        {
            var outcome = await MorphRunner.RunAsync("evidence", "verify", "--tee", "sgx",
                "--evidence", V("sgx", "automata_icelake_00606a000000_v3_quote.bin"), "--collateral", dir,
                "--time", "2025-08-15T05:45:00Z", "--accept-tcb", "UpToDate", "SWHardeningNeeded", "--json");
            Assert.Equal(ExitCodes.Ok, outcome.ExitCode);
            using var json = JsonDocument.Parse(outcome.Stdout);
            Assert.Equal("SWHardeningNeeded", json.RootElement.GetProperty("tcb_status").GetString());
            Assert.Equal("warning", json.RootElement.GetProperty("status").GetString());
            Assert.Equal("INTEL-SA-00615", json.RootElement.GetProperty("advisory_ids")[0].GetString());
            Assert.Equal("a4f45c39dac622cb1dd32ddb35a52ec92db41d0fa88a1c911c49e59c534f61cd", json.RootElement.GetProperty("measurement").GetString());

            var today = await MorphRunner.RunAsync("evidence", "verify", "--tee", "sgx",
                "--evidence", V("sgx", "automata_icelake_00606a000000_v3_quote.bin"), "--collateral", dir, "--json");
            Assert.Equal(ExitCodes.Rejected, today.ExitCode);
            Assert.Contains("expired", today.Stdout);
        }
        finally
        {
            Directory.Delete(dir, recursive: true);
        }
    }

    [VectorFact]
    public async Task Sgx_quote_with_a_bundle_file_verifies()
    {
        var outcome = await MorphRunner.RunAsync("evidence", "verify", "--tee", "sgx",
            "--evidence", V("sgx", "phala_rocketlake_00a067110000_v3_quote.bin"),
            "--collateral", V("sgx", "phala_rocketlake_00a067110000_collateral_20250619.json"),
            "--time", "2025-07-01T00:00:00Z", "--accept-tcb", "ConfigurationAndSWHardeningNeeded", "--json");
        using var json = JsonDocument.Parse(outcome.Stdout);
        Assert.Equal("ConfigurationAndSWHardeningNeeded", json.RootElement.GetProperty("tcb_status").GetString());
        Assert.Equal(ExitCodes.Ok, outcome.ExitCode);
    }

    [VectorFact]
    public async Task Without_collateral_sgx_is_rejected_naming_the_missing_item_and_fields_are_still_printed()
    {
        var outcome = await MorphRunner.RunAsync("evidence", "verify", "--tee", "tdx",
            "--evidence", V("tdx", "trustee_gnr_00a06d080000_v4_quote.bin"), "--json");
        Assert.Equal(ExitCodes.Rejected, outcome.ExitCode);
        using var json = JsonDocument.Parse(outcome.Stdout);
        var failures = json.RootElement.GetProperty("failures").EnumerateArray().Select(f => f.GetString()).ToList();
        Assert.Contains(failures, f => f!.Contains("TCB info missing", StringComparison.Ordinal));
        Assert.Equal("21e8dead92d6c69d7cbba79816686c03a48485c7df0c11f6f04792d5e1d378f6b8c46615ba6946adccac6becffbb1e88",
            json.RootElement.GetProperty("measurement").GetString());
        Assert.Equal("05030200000000000000000000000000", json.RootElement.GetProperty("claims").GetProperty("tee_tcb_svn").GetString());
    }

    [VectorFact]
    public async Task Snp_without_vcek_is_rejected_but_shows_the_report()
    {
        var outcome = await MorphRunner.RunAsync("evidence", "verify", "--tee", "snp", "--evidence", V("snp", "trustee_milan_v2_report.bin"));
        Assert.Equal(ExitCodes.Rejected, outcome.ExitCode);
        Assert.Contains("VCEK/VLEK certificate missing", outcome.Stdout);
        Assert.Contains("a1f3930413247bb38cfc171579ea3c12", outcome.Stdout);
    }

    [Fact]
    public async Task Unreadable_or_truncated_input_exits_2_with_a_named_error()
    {
        var file = Path.GetTempFileName();
        try
        {
            await File.WriteAllBytesAsync(file, new byte[100]);
            var truncated = await MorphRunner.RunAsync("evidence", "verify", "--tee", "snp", "--evidence", file, "--json");
            Assert.Equal(ExitCodes.UsageOrInput, truncated.ExitCode);
            Assert.Contains("1184", truncated.Stderr);
            Assert.Equal("error", JsonDocument.Parse(truncated.Stdout).RootElement.GetProperty("status").GetString());

            var missing = await MorphRunner.RunAsync("evidence", "verify", "--tee", "snp", "--evidence", file + ".absent");
            Assert.Equal(ExitCodes.UsageOrInput, missing.ExitCode);
            Assert.Contains("not found", missing.Stderr);

            var badHex = await MorphRunner.RunAsync("evidence", "verify", "--tee", "snp", "--evidence", file, "--expect-measurement", "xyz");
            Assert.Equal(ExitCodes.UsageOrInput, badHex.ExitCode);
            Assert.Contains("--expect-measurement", badHex.Stderr);

            var badTime = await MorphRunner.RunAsync("evidence", "verify", "--tee", "snp", "--evidence", file, "--time", "yesterday");
            Assert.Equal(ExitCodes.UsageOrInput, badTime.ExitCode);
            Assert.Contains("--time", badTime.Stderr);

            var badTee = await MorphRunner.RunAsync("evidence", "verify", "--tee", "tpm", "--evidence", file);
            Assert.Equal(ExitCodes.UsageOrInput, badTee.ExitCode);
        }
        finally
        {
            File.Delete(file);
        }
    }

    /// <summary>A bad --crl or --vcek file is the user's to fix by that option: the error names it and the file, not the evidence.</summary>
    [VectorFact]
    public async Task An_unreadable_crl_or_vcek_file_is_named_by_its_option()
    {
        var file = Path.GetTempFileName();
        try
        {
            await File.WriteAllTextAsync(file, "not a CRL\n");
            string[] args = ["evidence", "verify", "--tee", "snp", "--evidence", V("snp", "trustee_milan_v2_report.bin")];

            var crl = await MorphRunner.RunAsync([.. args, "--vcek", V("snp", "trustee_milan_vcek.der"), "--crl", file]);
            Assert.Equal(ExitCodes.UsageOrInput, crl.ExitCode);
            Assert.Contains($"morph: --crl {file}: not a DER X.509 CRL", crl.Stderr);
            Assert.DoesNotContain("evidence", crl.Stderr);

            var vcek = await MorphRunner.RunAsync([.. args, "--vcek", file, "--json"]);
            Assert.Equal(ExitCodes.UsageOrInput, vcek.ExitCode);
            Assert.Contains($"morph: --vcek {file}: not a DER or PEM X.509 certificate", vcek.Stderr);
            Assert.StartsWith($"--vcek {file}: ", JsonDocument.Parse(vcek.Stdout).RootElement.GetProperty("error").GetString());
        }
        finally
        {
            File.Delete(file);
        }
    }

    [VectorFact]
    public async Task Show_prints_every_field_without_verifying()
    {
        var outcome = await MorphRunner.RunAsync("evidence", "show", "--tee", "tdx", "--evidence", V("tdx", "gotdxguest_emr_90c06f000000_v5_quote.bin"));
        Assert.Equal(ExitCodes.Ok, outcome.ExitCode);
        Assert.Contains("mrtd:", outcome.Stdout);
        Assert.Contains("rtmr0:", outcome.Stdout);
        Assert.Contains("fmspc:", outcome.Stdout);
        Assert.Contains("90c06f000000", outcome.Stdout);

        var wrongTee = await MorphRunner.RunAsync("evidence", "show", "--tee", "sgx", "--evidence", V("tdx", "gotdxguest_emr_90c06f000000_v5_quote.bin"));
        Assert.Equal(ExitCodes.UsageOrInput, wrongTee.ExitCode);
    }

    private static string CollateralDirectory(params string[] files)
    {
        var dir = Directory.CreateTempSubdirectory("morph-collateral-").FullName;
        foreach (var file in files)
        {
            File.Copy(file, Path.Combine(dir, Path.GetFileName(file)));
        }

        return dir;
    }
}
