using System.Text.Json.Nodes;

namespace Morphisms.Kms.Tests.Functions;

/// <summary>
/// A hardware registration must bind the function, not only the guest image it runs on: SNP HOST_DATA, TDX
/// MRCONFIGID with RTMR1/RTMR2, or an explicit, recorded statement that the measured image holds the function.
/// </summary>
public sealed class WorkloadBindingTests : IDisposable
{
    private static readonly string M48 = new('a', 96);
    private static readonly string Zero32 = new('0', 64);
    private static readonly string Zero48 = new('0', 96);
    private static readonly string HostData = new('c', 64);
    private static readonly string Rtmr1 = new('1', 96);
    private static readonly string Rtmr2 = new('2', 96);
    private static readonly string ConfigId = new('e', 96);
    private static readonly object Tcb = new { bootloader = 3, tee = 0, snp = 20, microcode = 200 };

    private readonly string _dir = Directory.CreateTempSubdirectory("kms-binding-").FullName;

    [Theory]
    // SNP: the launch measurement alone is the Kata guest image, shared by every pod on it.
    [InlineData("""{"snp":{"measurements":["M48"]}}""", "'snp.host_data' is missing")]
    [InlineData("""{"snp":{"measurements":["M48"],"host_data":"ZERO32"}}""", "'snp.host_data' is all zeros")]
    [InlineData("""{"snp":{"measurements":["M48"],"launch_measurement_binds_workload":false}}""", "'snp.host_data' is missing")]
    [InlineData("""{"snp":{"measurements":["M48"]},"simulated":{"snp":["M48"]}}""", "'snp.host_data' is missing")]
    // TDX: MRTD is only the firmware; the kernel (RTMR1) and initrd (RTMR2) are always needed, MRCONFIGID binds the function.
    [InlineData("""{"tdx":{"mrtds":["M48"]}}""", "'tdx.rtmr1' is missing")]
    [InlineData("""{"tdx":{"mrtds":["M48"],"mrconfigid":"CONFIG"}}""", "'tdx.rtmr1' is missing")]
    [InlineData("""{"tdx":{"mrtds":["M48"],"rtmr1":"RTMR1","mrconfigid":"CONFIG"}}""", "'tdx.rtmr2' is missing")]
    [InlineData("""{"tdx":{"mrtds":["M48"],"rtmr1":"ZERO48","rtmr2":"RTMR2","mrconfigid":"CONFIG"}}""", "'tdx.rtmr1' is all zeros")]
    [InlineData("""{"tdx":{"mrtds":["M48"],"rtmr1":"RTMR1","rtmr2":"RTMR2"}}""", "'tdx.mrconfigid' is missing")]
    [InlineData("""{"tdx":{"mrtds":["M48"],"rtmr1":"RTMR1","rtmr2":"RTMR2","mrconfigid":"ZERO48"}}""", "'tdx.mrconfigid' is all zeros")]
    // The opt-in never makes MRTD alone enough.
    [InlineData("""{"tdx":{"mrtds":["M48"],"launch_measurement_binds_workload":true}}""", "'tdx.rtmr1' is missing")]
    [InlineData("""{"tdx":{"mrtds":["M48"],"rtmr1":"RTMR1","launch_measurement_binds_workload":true}}""", "'tdx.rtmr2' is missing")]
    public async Task A_hardware_registration_that_binds_no_workload_is_a_400_naming_the_field_and_writes_nothing(string body, string named)
    {
        await using var kms = await TestKms.StartUnsealedAsync();
        var result = (await kms.Client.SendAsync("PUT", "morphisms/functions/signer", Fill(body))).Expect(400);
        var error = Assert.Single(result.Errors);
        Assert.Contains(named, error, StringComparison.Ordinal);
        Assert.Contains("launch_measurement_binds_workload", error, StringComparison.Ordinal);
        Assert.Contains(named.StartsWith("'tdx.rtmr", StringComparison.Ordinal) ? "MRTD measures only the TD firmware" : "initdata document", error, StringComparison.Ordinal);
        (await kms.Client.GetAsync("morphisms/functions/signer")).Expect(404);
    }

    [Fact]
    public async Task Host_data_or_mrconfigid_with_the_boot_rtmrs_binds_the_function_and_logs_no_opt_in()
    {
        await using var kms = await StartAsync();
        (await kms.Client.PutAsync("morphisms/functions/signer", new
        {
            snp = new { measurements = new[] { M48 }, minimum_tcb = Tcb, host_data = HostData },
            tdx = new { mrtds = new[] { M48 }, rtmr1 = Rtmr1, rtmr2 = Rtmr2, mrconfigid = ConfigId },
        })).Expect(200);

        var read = (await kms.Client.GetAsync("morphisms/functions/signer")).Expect(200).Data;
        Assert.Equal(HostData, read["snp"]!["host_data"]!.GetValue<string>());
        Assert.Equal(ConfigId, read["tdx"]!["mrconfigid"]!.GetValue<string>());
        Assert.False(read["snp"]!["launch_measurement_binds_workload"]!.GetValue<bool>());
        Assert.False(read["tdx"]!["launch_measurement_binds_workload"]!.GetValue<bool>());
        Assert.DoesNotContain("function-launch-measurement-binds-workload", await AuditAsync(), StringComparison.Ordinal);
    }

    [Fact]
    public async Task The_opt_in_is_accepted_and_shown_by_a_read_and_in_the_audit_log()
    {
        await using var kms = await StartAsync();
        (await kms.Client.PutAsync("morphisms/functions/signer", new
        {
            snp = new { measurements = new[] { M48 }, minimum_tcb = Tcb, launch_measurement_binds_workload = true },
            tdx = new { mrtds = new[] { M48 }, rtmr1 = Rtmr1, rtmr2 = Rtmr2, launch_measurement_binds_workload = true },
        })).Expect(200);

        var read = (await kms.Client.GetAsync("morphisms/functions/signer")).Expect(200).Data;
        Assert.True(read["snp"]!["launch_measurement_binds_workload"]!.GetValue<bool>());
        Assert.True(read["tdx"]!["launch_measurement_binds_workload"]!.GetValue<bool>());
        Assert.True(read["revisions"]![0]!["snp"]!["launch_measurement_binds_workload"]!.GetValue<bool>());

        var events = Events(await AuditAsync(), "function-launch-measurement-binds-workload");
        var recorded = Assert.Single(events);
        Assert.Equal("signer", recorded["function"]!.GetValue<string>());
        Assert.Equal(["snp", "tdx"], recorded["tees"]!.AsArray().Select(t => t!.GetValue<string>()));
        Assert.Equal(1, recorded["revision"]!.GetValue<int>());

        // A read written back as it is stays the same revision: the opt-in round-trips.
        (await kms.Client.PutAsync("morphisms/functions/signer", new { snp = read["snp"]!.DeepClone(), tdx = read["tdx"]!.DeepClone() })).Expect(200);
        Assert.Equal(1, (await kms.Client.GetAsync("morphisms/functions/signer")).Expect(200).Data["current_revision"]!.GetValue<int>());
    }

    [Fact]
    public async Task An_opt_in_beside_the_binding_field_relies_on_nothing_and_is_not_audited_as_relied_on()
    {
        await using var kms = await StartAsync();
        (await kms.Client.PutAsync("morphisms/functions/signer", new
        {
            snp = new { measurements = new[] { M48 }, minimum_tcb = Tcb, host_data = HostData, launch_measurement_binds_workload = true },
            tdx = new { mrtds = new[] { M48 }, rtmr1 = Rtmr1, rtmr2 = Rtmr2, mrconfigid = ConfigId, launch_measurement_binds_workload = true },
        })).Expect(200);

        // Stored and shown as written; but HOST_DATA and MRCONFIGID bind the function, so no login rests on the word.
        var read = (await kms.Client.GetAsync("morphisms/functions/signer")).Expect(200).Data;
        Assert.True(read["snp"]!["launch_measurement_binds_workload"]!.GetValue<bool>());
        Assert.Empty(Events(await AuditAsync(), "function-launch-measurement-binds-workload"));

        // Only the TEE without its binding field is recorded.
        (await kms.Client.PutAsync("morphisms/functions/signer", new
        {
            snp = new { measurements = new[] { M48 }, minimum_tcb = Tcb, host_data = HostData, launch_measurement_binds_workload = true },
            tdx = new { mrtds = new[] { M48 }, rtmr1 = Rtmr1, rtmr2 = Rtmr2, launch_measurement_binds_workload = true },
        })).Expect(200);
        var recorded = Assert.Single(Events(await AuditAsync(), "function-launch-measurement-binds-workload"));
        Assert.Equal(["tdx"], recorded["tees"]!.AsArray().Select(t => t!.GetValue<string>()));
    }

    [Fact]
    public async Task An_opt_in_proposed_to_owners_is_audited_with_its_update()
    {
        await using var kms = await StartAsync();
        (await kms.Client.PutAsync("morphisms/functions/signer", new
        {
            owners = new[] { "alice", "bob" },
            approvals_required = 1,
            snp = new { measurements = new[] { M48 }, minimum_tcb = Tcb, host_data = HostData },
        })).Expect(200);
        var written = (await kms.Client.PutAsync("morphisms/functions/signer", new
        {
            snp = new { measurements = new[] { M48 }, minimum_tcb = Tcb, launch_measurement_binds_workload = true },
        })).Expect(200).Data;

        var id = written["pending_update"]!["id"]!.GetValue<int>();
        var recorded = Assert.Single(Events(await AuditAsync(), "function-launch-measurement-binds-workload"));
        Assert.Equal(id, recorded["update"]!.GetValue<int>());
        Assert.Null(recorded["revision"]);
    }

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    private Task<TestKms> StartAsync() => TestKms.StartUnsealedAsync(o => o with { AuditLogPath = Path.Combine(_dir, "audit.log") });

    private Task<string> AuditAsync() => File.ReadAllTextAsync(Path.Combine(_dir, "audit.log"));

    private static List<JsonNode> Events(string audit, string type) =>
        [.. audit.Split('\n', StringSplitOptions.RemoveEmptyEntries).Select(l => JsonNode.Parse(l)!).Where(e => e["type"]?.GetValue<string>() == type)];

    private static string Fill(string body) => body
        .Replace("M48", M48, StringComparison.Ordinal)
        .Replace("ZERO32", Zero32, StringComparison.Ordinal)
        .Replace("ZERO48", Zero48, StringComparison.Ordinal)
        .Replace("RTMR1", Rtmr1, StringComparison.Ordinal)
        .Replace("RTMR2", Rtmr2, StringComparison.Ordinal)
        .Replace("CONFIG", ConfigId, StringComparison.Ordinal);
}
