using System.Text.Json.Nodes;

namespace Morphisms.Kms.Tests.Functions;

/// <summary>
/// New SEV-SNP reference values must say which firmware and microcode they accept: a <c>minimum_tcb</c>, or the
/// explicit, recorded <c>allow_any_tcb: true</c>. Without either the SNP validator would check no TCB at all.
/// </summary>
public sealed class SnpTcbFloorTests : IDisposable
{
    private static readonly string M48 = new('a', 96);
    private static readonly string Other48 = new('b', 96);
    private static readonly string HostData = new('c', 64);
    private static readonly object Floor = new { bootloader = 3, tee = 0, snp = 20, microcode = 200 };

    private readonly string _dir = Directory.CreateTempSubdirectory("kms-snp-tcb-").FullName;

    [Theory]
    [InlineData("""{"snp":{"measurements":["M48"],"host_data":"HOST"}}""")]
    [InlineData("""{"snp":{"measurements":["M48"],"host_data":"HOST","allow_any_tcb":false}}""")]
    [InlineData("""{"snp":{"measurements":["M48"],"host_data":"HOST"},"simulated":{"snp":["M48"]}}""")]
    public async Task A_registration_without_a_tcb_floor_is_a_400_naming_the_field_and_the_opt_out_and_writes_nothing(string body)
    {
        await using var kms = await StartAsync();
        var result = (await kms.Client.SendAsync("PUT", "morphisms/functions/signer", Fill(body))).Expect(400);
        var error = Assert.Single(result.Errors);
        Assert.Contains("'snp.minimum_tcb' is missing", error, StringComparison.Ordinal);
        Assert.Contains("snp.allow_any_tcb to true", error, StringComparison.Ordinal);
        Assert.Contains("--snp-minimum-tcb any", error, StringComparison.Ordinal);
        (await kms.Client.GetAsync("morphisms/functions/signer")).Expect(404);
        Assert.DoesNotContain("function-snp-allow-any-tcb", await AuditAsync(), StringComparison.Ordinal);
    }

    [Fact]
    public async Task A_floor_and_the_opt_out_together_are_a_400()
    {
        await using var kms = await StartAsync();
        var result = (await kms.Client.PutAsync("morphisms/functions/signer", new
        {
            snp = new { measurements = new[] { M48 }, host_data = HostData, minimum_tcb = Floor, allow_any_tcb = true },
        })).Expect(400);
        Assert.Contains("'snp.allow_any_tcb'", Assert.Single(result.Errors), StringComparison.Ordinal);
        (await kms.Client.GetAsync("morphisms/functions/signer")).Expect(404);
    }

    [Theory]
    [InlineData(null)]
    [InlineData(0)]
    public async Task An_all_zero_floor_checks_nothing_and_is_a_400(int? fmc)
    {
        await using var kms = await StartAsync();
        object zero = fmc is null
            ? new { bootloader = 0, tee = 0, snp = 0, microcode = 0 }
            : new { bootloader = 0, tee = 0, snp = 0, microcode = 0, fmc };
        var result = (await kms.Client.PutAsync("morphisms/functions/signer", new
        {
            snp = new { measurements = new[] { M48 }, host_data = HostData, minimum_tcb = zero },
        })).Expect(400);
        Assert.Contains("'snp.minimum_tcb' is all zeros", Assert.Single(result.Errors), StringComparison.Ordinal);
        (await kms.Client.GetAsync("morphisms/functions/signer")).Expect(404);

        // One non-zero SPL is a floor.
        (await kms.Client.PutAsync("morphisms/functions/signer", new
        {
            snp = new { measurements = new[] { M48 }, host_data = HostData, minimum_tcb = new { bootloader = 0, tee = 0, snp = 0, microcode = 1 } },
        })).Expect(200);
    }

    [Fact]
    public async Task New_values_without_a_floor_leave_a_registered_function_as_it_was()
    {
        await using var kms = await StartAsync();
        var c = kms.Client;
        (await c.PutAsync("morphisms/functions/signer", new { snp = new { measurements = new[] { M48 }, host_data = HostData, minimum_tcb = Floor } })).Expect(200);

        var refused = (await c.PutAsync("morphisms/functions/signer", new { snp = new { measurements = new[] { Other48 }, host_data = HostData } })).Expect(400);
        Assert.Contains("'snp.minimum_tcb' is missing", Assert.Single(refused.Errors), StringComparison.Ordinal);

        var read = (await c.GetAsync("morphisms/functions/signer")).Expect(200).Data;
        Assert.Equal(1, read["current_revision"]!.GetValue<int>());
        Assert.Equal(M48, read["snp"]!["measurements"]![0]!.GetValue<string>());
        Assert.Equal(20, read["snp"]!["minimum_tcb"]!["snp"]!.GetValue<int>());
        Assert.Null(read["snp"]!["allow_any_tcb"]);
    }

    [Fact]
    public async Task An_update_proposed_to_owners_without_a_floor_is_refused_and_nothing_is_pending()
    {
        await using var kms = await StartAsync();
        var c = kms.Client;
        (await c.PutAsync("morphisms/functions/signer", new
        {
            owners = new[] { "alice" },
            approvals_required = 1,
            snp = new { measurements = new[] { M48 }, host_data = HostData, minimum_tcb = Floor },
        })).Expect(200);

        var refused = (await c.PutAsync("morphisms/functions/signer", new { snp = new { measurements = new[] { Other48 }, host_data = HostData } })).Expect(400);
        Assert.Contains("'snp.minimum_tcb' is missing", Assert.Single(refused.Errors), StringComparison.Ordinal);
        Assert.Empty((await c.GetAsync("morphisms/functions/signer")).Expect(200).Data["pending_updates"]!.AsArray());
    }

    [Fact]
    public async Task The_opt_out_is_written_with_a_warning_shown_by_a_read_and_audited()
    {
        await using var kms = await StartAsync();
        var c = kms.Client;
        var written = (await c.PutAsync("morphisms/functions/signer", new { snp = new { measurements = new[] { M48 }, host_data = HostData, allow_any_tcb = true } })).Expect(200);
        Assert.Contains(Strings(written.Body!["warnings"]), w => w.Contains("snp.minimum_tcb is not set", StringComparison.Ordinal));

        var read = (await c.GetAsync("morphisms/functions/signer")).Expect(200).Data;
        Assert.True(read["snp"]!["allow_any_tcb"]!.GetValue<bool>());
        Assert.Null(read["snp"]!["minimum_tcb"]);
        Assert.True(read["revisions"]![0]!["snp"]!["allow_any_tcb"]!.GetValue<bool>());

        var recorded = Assert.Single(Events(await AuditAsync(), "function-snp-allow-any-tcb"));
        Assert.Equal("signer", recorded["function"]!.GetValue<string>());
        Assert.Equal(1, recorded["revision"]!.GetValue<int>());

        // A read written back as it is stays the same revision: the opt-out round-trips.
        (await c.PutAsync("morphisms/functions/signer", new { snp = read["snp"]!.DeepClone() })).Expect(200);
        Assert.Equal(1, (await c.GetAsync("morphisms/functions/signer")).Expect(200).Data["current_revision"]!.GetValue<int>());

        // A floor in place of the opt-out is new values: a new revision that checks the TCB, with no warning.
        var pinned = (await c.PutAsync("morphisms/functions/signer", new { snp = new { measurements = new[] { M48 }, host_data = HostData, minimum_tcb = Floor } })).Expect(200);
        Assert.DoesNotContain(pinned.Body!["warnings"] is { } warnings ? Strings(warnings) : [], w => w.Contains("minimum_tcb", StringComparison.Ordinal));
        read = (await c.GetAsync("morphisms/functions/signer")).Expect(200).Data;
        Assert.Equal(2, read["current_revision"]!.GetValue<int>());
        Assert.Null(read["snp"]!["allow_any_tcb"]);
    }

    [Fact]
    public async Task An_opt_out_proposed_to_owners_is_audited_with_its_update()
    {
        await using var kms = await StartAsync();
        var c = kms.Client;
        (await c.PutAsync("morphisms/functions/signer", new
        {
            owners = new[] { "alice" },
            approvals_required = 1,
            snp = new { measurements = new[] { M48 }, host_data = HostData, minimum_tcb = Floor },
        })).Expect(200);
        var written = (await c.PutAsync("morphisms/functions/signer", new { snp = new { measurements = new[] { M48 }, host_data = HostData, allow_any_tcb = true } })).Expect(200);
        Assert.Contains(Strings(written.Body!["warnings"]), w => w.Contains("snp.minimum_tcb is not set", StringComparison.Ordinal));

        var recorded = Assert.Single(Events(await AuditAsync(), "function-snp-allow-any-tcb"));
        Assert.Equal(written.Data["pending_update"]!["id"]!.GetValue<int>(), recorded["update"]!.GetValue<int>());
        Assert.Null(recorded["revision"]);
    }

    [Fact]
    public async Task Simulated_measurements_alone_need_no_floor()
    {
        await using var kms = await StartAsync();
        var written = (await kms.Client.PutAsync("morphisms/functions/signer", new { simulated = new { snp = new[] { M48 } } })).Expect(200);
        Assert.DoesNotContain(written.Body!["warnings"] is { } warnings ? Strings(warnings) : [], w => w.Contains("minimum_tcb", StringComparison.Ordinal));
    }

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    private Task<TestKms> StartAsync() => TestKms.StartUnsealedAsync(o => o with { AuditLogPath = Path.Combine(_dir, "audit.log") });

    private async Task<string> AuditAsync()
    {
        var path = Path.Combine(_dir, "audit.log");
        return File.Exists(path) ? await File.ReadAllTextAsync(path) : "";
    }

    private static List<JsonNode> Events(string audit, string type) =>
        [.. audit.Split('\n', StringSplitOptions.RemoveEmptyEntries).Select(l => JsonNode.Parse(l)!).Where(e => e["type"]?.GetValue<string>() == type)];

    private static List<string> Strings(JsonNode? node) => [.. node!.AsArray().Select(n => n!.GetValue<string>())];

    private static string Fill(string body) => body.Replace("M48", M48, StringComparison.Ordinal).Replace("HOST", HostData, StringComparison.Ordinal);
}
