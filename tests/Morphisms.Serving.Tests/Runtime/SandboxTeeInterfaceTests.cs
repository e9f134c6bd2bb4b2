using Morphisms.Serving.Revisions;
using Morphisms.Serving.Runtime;
using Morphisms.Serving.Spec;

namespace Morphisms.Serving.Tests;

/// <summary>
/// An instance of a real TEE gets its evidence through that TEE's guest interfaces, which bubblewrap's fresh /dev and
/// read-only /sys do not have: the sandbox shows exactly its own TEE's interfaces that exist on the host, at the
/// standard paths, and nothing of them to <c>sim</c> or <c>none</c>. Temporary files stand in for the host's devices.
/// </summary>
public sealed class SandboxTeeInterfaceTests() : HostScratch("morph-tee-")
{
    private const string Tsm = "/sys/kernel/config/tsm/report";

    public static TheoryData<FunctionTee> WithoutInterfaces => new() { FunctionTee.Sim, FunctionTee.None };

    [Fact]
    public void An_snp_instance_gets_the_sev_guest_device_and_the_tsm_report_directory_writable()
    {
        var host = AllPresent();

        var plan = TeeSandboxPlan.For(FunctionTee.Snp, host);
        var args = Wrap(plan);

        Assert.Null(plan.Missing);
        Assert.True(Follows(args, "--dev-bind", host.SevGuest, "/dev/sev-guest"), string.Join(' ', args));
        Assert.True(Follows(args, "--bind", host.ConfigFsTsmReport, Tsm), string.Join(' ', args));

        // Mounted over the fresh /dev and the read-only /sys, not hidden under them.
        Assert.True(Index(args, "--dev-bind", host.SevGuest) > Index(args, "--dev", "/dev"));
        Assert.True(Index(args, "--bind", host.ConfigFsTsmReport) > Index(args, "--ro-bind", "/sys"));
        Assert.DoesNotContain(args, a => a == host.TdxGuest || a == host.SgxEnclave || a == host.AesmDirectory);
    }

    [Fact]
    public void A_tdx_instance_gets_the_tdx_guest_device_and_configfs_tsm_and_an_sgx_one_what_gramine_sgx_needs()
    {
        var host = AllPresent();

        var tdx = TeeSandboxPlan.For(FunctionTee.Tdx, host);
        var sgx = TeeSandboxPlan.For(FunctionTee.Sgx, host);

        Assert.Equal(
            [
                new SandboxMount(SandboxMountKind.Device, host.TdxGuest, "/dev/tdx_guest"),
                new SandboxMount(SandboxMountKind.ReadWrite, host.ConfigFsTsmReport, Tsm),
            ],
            tdx.Mounts);
        Assert.Equal(
            [
                new SandboxMount(SandboxMountKind.Device, host.SgxEnclave, "/dev/sgx_enclave"),
                new SandboxMount(SandboxMountKind.Device, host.SgxProvision, "/dev/sgx_provision"),
                new SandboxMount(SandboxMountKind.ReadOnly, host.AesmDirectory, "/var/run/aesmd"),
            ],
            sgx.Mounts);
        Assert.Null(tdx.Missing);
        Assert.Null(sgx.Missing);
        Assert.True(Follows(Wrap(sgx), "--ro-bind", host.AesmDirectory, "/var/run/aesmd"));
    }

    [Theory]
    [MemberData(nameof(WithoutInterfaces))]
    public void Sim_and_none_instances_get_no_TEE_interface_even_where_the_host_has_them(FunctionTee tee)
    {
        var host = AllPresent();

        var plan = TeeSandboxPlan.For(tee, host);
        var args = Wrap(plan);

        Assert.Empty(plan.Mounts);
        Assert.Null(plan.Missing);
        Assert.DoesNotContain("--dev-bind", args);
        Assert.DoesNotContain(args, a => a.StartsWith(Root, StringComparison.Ordinal));
    }

    [Fact]
    public void Interfaces_missing_on_the_host_are_left_out_and_named_when_evidence_needs_them()
    {
        var host = AllPresent();
        var absent = Path.Combine(Root, "absent");

        var snpWithoutTsm = TeeSandboxPlan.For(FunctionTee.Snp, host with { ConfigFsTsmReport = absent });
        var snpWithNothing = TeeSandboxPlan.For(FunctionTee.Snp, host with { ConfigFsTsmReport = absent, SevGuest = absent + "-dev" });
        var tdxWithoutTsm = TeeSandboxPlan.For(FunctionTee.Tdx, host with { ConfigFsTsmReport = absent });
        var tdxWithoutDevice = TeeSandboxPlan.For(FunctionTee.Tdx, host with { TdxGuest = absent + "-dev" });
        var tdxWithoutPinSource = TeeSandboxPlan.For(FunctionTee.Tdx, host with { TdxGuest = absent + "-dev", TdxMrConfigId = absent + "-mr" });
        var sgxWithoutAesm = TeeSandboxPlan.For(FunctionTee.Sgx, host with { AesmDirectory = absent });

        // The ioctl device alone is enough for SNP: morph-init falls back to it.
        Assert.Equal([new SandboxMount(SandboxMountKind.Device, host.SevGuest, "/dev/sev-guest")], snpWithoutTsm.Mounts);
        Assert.Null(snpWithoutTsm.Missing);
        Assert.DoesNotContain(absent, Wrap(snpWithoutTsm));

        Assert.Empty(snpWithNothing.Mounts);
        Assert.Equal($"neither {absent}-dev nor {absent} exists", snpWithNothing.Missing);

        Assert.Equal([new SandboxMount(SandboxMountKind.Device, host.TdxGuest, "/dev/tdx_guest")], tdxWithoutTsm.Mounts);
        Assert.StartsWith($"{absent} does not exist", tdxWithoutTsm.Missing, StringComparison.Ordinal);

        // The pin is read from the TD's own report: the kernel's measurement file is enough without the device, and
        // neither is a host whose instances could not pin their KMS.
        Assert.Equal([new SandboxMount(SandboxMountKind.ReadWrite, host.ConfigFsTsmReport, Tsm)], tdxWithoutDevice.Mounts);
        Assert.Null(tdxWithoutDevice.Missing);
        Assert.Equal($"neither {absent}-dev nor {absent}-mr exists (morph-init reads its KMS pin, MRCONFIGID, from the TD's own report)", tdxWithoutPinSource.Missing);

        Assert.Equal([host.SgxEnclave, host.SgxProvision], sgxWithoutAesm.Mounts.Select(m => m.Source));
        Assert.StartsWith($"{absent} does not exist", sgxWithoutAesm.Missing, StringComparison.Ordinal);
    }

    [Fact]
    public async Task A_host_without_the_TEE_says_so_once_in_its_log_and_in_each_instances_log()
    {
        var absent = Path.Combine(Root, "absent");
        var log = new List<string>();
        var launcher = new ProcessInstanceLauncher(
            Options(SandboxMode.Off, new TeeInterfaces { SevGuest = absent, ConfigFsTsmReport = absent }, ["/bin/true"]),
            TimeProvider.System,
            line => { lock (log) { log.Add(line); } });

        for (var i = 1; i <= 2; i++)
        {
            await using var instance = launcher.Launch(Revision(Spec(FunctionTee.Snp)), $"snp-{i}");
            Assert.Contains(instance.Logs.Snapshot(), l => l.Text == $"no usable tee: snp interface on this host: neither {absent} nor {absent} exists");
        }

        await using var sim = launcher.Launch(Revision(Spec(FunctionTee.Sim)), "sim-1");

        lock (log)
        {
            Assert.Equal(
                [$"runtime: tee: snp functions cannot obtain evidence on this host (first: probe): neither {absent} nor {absent} exists (logged once per TEE)"],
                log.Where(l => l.Contains("cannot obtain evidence", StringComparison.Ordinal)));
        }

        Assert.DoesNotContain(sim.Logs.Snapshot(), l => l.Text.Contains("no usable tee", StringComparison.Ordinal));
    }

    [BubblewrapTheory]
    [InlineData(FunctionTee.Snp, "stand-in sev-guest")]
    [InlineData(FunctionTee.Sim, "no sev-guest")]
    public async Task A_stand_in_device_appears_at_dev_sev_guest_for_an_snp_instance_and_not_for_sim(FunctionTee tee, string expected)
    {
        var device = Path.Combine(Root, "sev-guest");
        File.WriteAllText(device, "stand-in sev-guest\n");

        // A stand-in for morph-init that reports what it finds where the SNP agent looks.
        var options = Options(SandboxMode.Required, new TeeInterfaces { SevGuest = device, ConfigFsTsmReport = Path.Combine(Root, "absent") }, ["/bin/sh", "-c", """
            if [ -e /dev/sev-guest ]; then cat /dev/sev-guest; else echo "no sev-guest"; fi
            """, "morph-init"]);

        var output = await SandboxProbe.RunAsync(options, Spec(tee));

        Assert.Equal([expected], output);
    }

    private static Revision Revision(FunctionSpec spec) => new("probe-00001", 1, spec, [], "", DateTimeOffset.UtcNow);

    private static List<string> Wrap(TeeSandboxPlan plan) =>
        [.. new Bubblewrap("/usr/bin/bwrap", "bubblewrap (test)").Wrap(["/bin/true"], [], [], plan.Mounts)];

    private static bool Follows(List<string> args, params string[] sequence) =>
        Enumerable.Range(0, args.Count - sequence.Length + 1).Any(i => args.Skip(i).Take(sequence.Length).SequenceEqual(sequence));

    private static int Index(List<string> args, string flag, string source) =>
        Enumerable.Range(0, args.Count - 1).First(i => args[i] == flag && args[i + 1] == source);

    private RuntimeOptions Options(SandboxMode sandbox, TeeInterfaces tee, IReadOnlyList<string> morphInit) => new()
    {
        DataDirectory = Path.Combine(Root, "data"),
        Sandbox = sandbox,
        KmsUrl = new Uri("https://127.0.0.1:1/"),
        SimulatedTeeDirectory = Path.Combine(Root, "simulated-tee"),
        MorphInit = morphInit,
        TeeInterfaces = tee,
    };

    // Every interface stands in as a file or directory under the test's root.
    private TeeInterfaces AllPresent()
    {
        var dev = Directory.CreateDirectory(Path.Combine(Root, "dev")).FullName;
        string File(string name)
        {
            var path = Path.Combine(dev, name);
            System.IO.File.WriteAllText(path, "");
            return path;
        }

        return new TeeInterfaces
        {
            SevGuest = File("sev-guest"),
            TdxGuest = File("tdx_guest"),
            TdxMrConfigId = File("mrconfigid"),
            SgxEnclave = File("sgx_enclave"),
            SgxProvision = File("sgx_provision"),
            ConfigFsTsmReport = Directory.CreateDirectory(Path.Combine(Root, "tsm", "report")).FullName,
            AesmDirectory = Directory.CreateDirectory(Path.Combine(Root, "aesmd")).FullName,
        };
    }

    private FunctionSpec Spec(FunctionTee tee)
    {
        var bundle = Directory.CreateDirectory(Path.Combine(Root, "bundle")).FullName;
        return new FunctionSpec { Name = "probe", Tee = tee, Bundle = bundle, Command = ["/bin/true"] };
    }
}
