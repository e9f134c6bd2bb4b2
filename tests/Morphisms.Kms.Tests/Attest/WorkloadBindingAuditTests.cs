using System.Security.Cryptography;
using System.Text.Json.Nodes;
using Morphisms.Attestation;
using Morphisms.Attestation.Simulated;
using Morphisms.Attestation.Trust;

namespace Morphisms.Kms.Tests.Attest;

/// <summary>
/// An accepted attest-login's audit entry says whether the revision it matched relies on
/// <c>launch_measurement_binds_workload</c> for the evidence's TEE: then nothing but the registrant's word ties the
/// login to the function rather than to every guest of the same image, and an auditor has to be able to find those.
/// </summary>
public sealed class WorkloadBindingAuditTests : IDisposable
{
    // The simulated platform's own TCB as the floor: these logins are accepted, and are about something else.
    private static readonly object Floor = new
    {
        bootloader = SimulatedTees.Trusted.SnpTcb.Bootloader,
        tee = SimulatedTees.Trusted.SnpTcb.Tee,
        snp = SimulatedTees.Trusted.SnpTcb.Snp,
        microcode = SimulatedTees.Trusted.SnpTcb.Microcode,
    };

    private readonly string _dir = Directory.CreateTempSubdirectory("kms-binding-audit-").FullName;

    [Fact]
    public async Task An_accepted_login_records_whether_its_revision_relies_on_the_launch_measurement_binding_the_workload()
    {
        // The simulated TEE's AMD roots trusted as hardware roots, so its reports are appraised against the hardware
        // (snp) reference values, which is where the opt-in lives; real evidence cannot bind this KMS's nonce.
        var hardware = new TrustAnchors([SimulatedTees.Trusted.AmdRoots with { Simulated = false }], []);
        var audit = Path.Combine(_dir, "audit.log");
        await using var kms = await TestKms.StartUnsealedAsync(o => o with
        {
            AuditLogPath = audit,
            Attestation = o.Attestation with { SimulatedTee = SimulatedTees.Trusted, SimulatedMeasurement = SimulatedTees.KmsMeasurement, VendorAnchors = hardware },
        });
        var c = kms.Client;
        var measurement = Hex.Of(FunctionInstance.SnpMeasurement);
        var hostData = SHA256.HashData("initdata of bound"u8);
        (await c.PutAsync("morphisms/functions/opted-in", new { snp = new { measurements = new[] { measurement }, minimum_tcb = Floor, launch_measurement_binds_workload = true } })).Expect(200);
        (await c.PutAsync("morphisms/functions/bound", new { snp = new { measurements = new[] { measurement }, minimum_tcb = Floor, host_data = Hex.Of(hostData) } })).Expect(200);

        // The opt-in beside HOST_DATA: the field binds the function, so this login rests on no one's word.
        (await c.PutAsync("morphisms/functions/both", new { snp = new { measurements = new[] { measurement }, minimum_tcb = Floor, host_data = Hex.Of(hostData), launch_measurement_binds_workload = true } })).Expect(200);
        (await c.PutAsync("morphisms/functions/any-tcb", new { snp = new { measurements = new[] { measurement }, allow_any_tcb = true, host_data = Hex.Of(hostData) } })).Expect(200);

        using var instance = new FunctionInstance();
        foreach (var (function, data) in new[] { ("opted-in", new byte[32]), ("bound", hostData), ("both", hostData), ("any-tcb", hostData) })
        {
            var nonce = await AttestFlow.ChallengeAsync(c, function);
            var report = SimulatedTees.Trusted.CreateSnpReport(new SimulatedSnpReportRequest { ReportData = instance.Binding(nonce), Measurement = FunctionInstance.SnpMeasurement, HostData = data });
            var login = (await AttestFlow.LoginAsync(c, "snp", report, nonce, instance.CsrPem, function, SimulatedTees.Trusted.Vcek.RawData)).Expect(200);
            Assert.False(login.Data["attestation"]!["simulated"]!.GetValue<bool>());
        }

        var entries = await AcceptedLoginsAsync(audit);
        Assert.True(entries["opted-in"]["launch_measurement_binds_workload"]!.GetValue<bool>());
        Assert.False(entries["bound"]["launch_measurement_binds_workload"]!.GetValue<bool>());
        Assert.False(entries["both"]["launch_measurement_binds_workload"]!.GetValue<bool>());

        // The TCB floor's opt-out is found the same way.
        Assert.True(entries["any-tcb"]["snp_tcb_unchecked"]!.GetValue<bool>());
        Assert.False(entries["bound"]["snp_tcb_unchecked"]!.GetValue<bool>());
    }

    [Fact]
    public async Task Simulated_evidence_never_relies_on_the_opt_in_of_the_hardware_reference()
    {
        var audit = Path.Combine(_dir, "audit.log");
        await using var kms = await TestKms.StartUnsealedAsync(o => SimulatedTees.TrustingSimulated(o) with { AuditLogPath = audit });
        var c = kms.Client;
        var measurement = Hex.Of(FunctionInstance.SnpMeasurement);
        (await c.PutAsync("morphisms/functions/signer", new
        {
            snp = new { measurements = new[] { measurement }, minimum_tcb = Floor, launch_measurement_binds_workload = true },
            simulated = new { snp = new[] { measurement } },
        })).Expect(200);

        using var instance = new FunctionInstance();
        var nonce = await AttestFlow.ChallengeAsync(c);
        (await AttestFlow.LoginAsync(c, "snp", instance.SnpReport(nonce), nonce, instance.CsrPem)).Expect(200);

        var simulated = (await AcceptedLoginsAsync(audit))["signer"];
        Assert.False(simulated["launch_measurement_binds_workload"]!.GetValue<bool>());
        Assert.False(simulated["snp_tcb_unchecked"]!.GetValue<bool>());
    }

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    /// <summary>The accepted attest-login entries of the audit log, by function.</summary>
    private static async Task<Dictionary<string, JsonObject>> AcceptedLoginsAsync(string audit) =>
        (await File.ReadAllLinesAsync(audit))
            .Select(line => JsonNode.Parse(line)!.AsObject())
            .Where(e => e["type"]?.GetValue<string>() == "attest-login" && e["outcome"]?.GetValue<string>() == "accepted")
            .ToDictionary(e => e["function"]!.GetValue<string>());
}
