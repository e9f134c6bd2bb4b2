using Morphisms.Serving.Hosting;
using Morphisms.Serving.Runtime;
using Morphisms.Serving.Spec;

namespace Morphisms.Serving.Tests;

/// <summary>
/// bubblewrap leaves a root caller every capability unless told otherwise, and a serving host often runs as root (CI,
/// containers): its instances would then hold <c>CAP_SYS_ADMIN</c>, <c>CAP_SYS_PTRACE</c>, <c>CAP_DAC_OVERRIDE</c> and
/// the rest inside the sandbox, enough to remount its read-only root, read files whatever their mode and read the
/// non-dumpable morph-init's <c>/proc</c> entries. So every instance runs with none, whoever runs the host; and what an
/// instance needs (its devices, its directories) stays reachable by file permissions alone. Host paths live under
/// /var/tmp: the sandbox's private /tmp would hide anything under /tmp.
/// </summary>
public sealed class SandboxCapabilityTests(ServingKms kms) : HostScratch("morph-caps-"), IClassFixture<ServingKms>
{

    public static TheoryData<FunctionTee> Tees => new() { FunctionTee.None, FunctionTee.Sim };

    [BubblewrapTheory]
    [MemberData(nameof(Tees))]
    public async Task An_instance_holds_no_capability_and_cannot_regain_one_even_when_the_host_runs_asRoot(FunctionTee tee)
    {
        // The probe (CapabilityProbe) prints its own status, then the kernel's errno for reading a file its mode closes
        // to everyone (CAP_DAC_OVERRIDE) and for making the root writable (CAP_SYS_ADMIN), having shown the file is there.
        var spec = Spec(tee, [.. TestFunctions.AppCommand.SkipLast(1), "caps-probe"]);
        var locked = Path.Combine(spec.Bundle, "locked");
        File.WriteAllText(locked, "closed to all\n");
        File.SetUnixFileMode(locked, UnixFileMode.None);
        spec = spec with { Command = [.. spec.Command, locked] };

        // For sim, a stand-in for morph-init that runs the app (its command after --), so the probe is the function's code
        // started by the agent. No CapBnd: bubblewrap empties the bounding set only in a user namespace, so as root it
        // stays full; no_new_privs is what keeps an exec (a setuid mount too) from taking anything from it.
        var output = await SandboxProbe.RunAsync(Options(["/bin/sh", "-c", """
            while [ $# -gt 0 ] && [ "$1" != -- ]; do shift; done
            shift
            exec "$@"
            """, "morph-init"]), spec);

        const string None = "0000000000000000";
        Assert.Equal(
            [
                $"CapInh:\t{None}", $"CapPrm:\t{None}", $"CapEff:\t{None}", $"CapAmb:\t{None}", "NoNewPrivs:\t1",
                "locked: open EACCES (Permission denied)", "remount rw /: EPERM (Operation not permitted)",
            ],
            output);
    }

    [BubblewrapFact]
    public async Task The_app_cannot_read_the_real_morph_inits_environment_even_when_the_host_runs_asRoot()
    {
        // The agent is non-dumpable, so its /proc/PID/environ (the environment it started with: an agent started by hand
        // may hold its report token there) is refused to the app beside it; CAP_SYS_PTRACE would override that, and
        // root's bubblewrap sandbox used to keep it.
        using var functions = new TestFunctions();
        await kms.PutBundleAsync("guarded");
        await using var host = await functions.HostAsync(GatewayMode.Confidential, kms.Connection, kms.SimDir);
        var spec = functions.Spec("guarded", "a", scale: new ScaleSpec { Min = 1 }) with
        {
            Command = ["/bin/sh", "-c", """
                if cat /proc/self/environ >/dev/null 2>&1; then echo "own environ: read"; else echo "own environ: denied"; fi
                if cat /proc/$PPID/environ >/dev/null 2>&1; then echo "agent environ: read"; else echo "agent environ: denied"; fi
                exec sleep 60
                """],
        };

        await host.DeployAsync(spec, CancellationToken.None);

        await Eventually.True(() => host.Logs("guarded", 200).Any(l => l.Line.Text.StartsWith("agent environ:", StringComparison.Ordinal)), "the app probed its agent", seconds: 40);
        var probes = host.Logs("guarded", 200).Select(l => l.Line.Text).Where(t => t.Contains(" environ: ", StringComparison.Ordinal)).ToList();
        Assert.Equal(["own environ: read", "agent environ: denied"], probes.Take(2));
    }

    [BubblewrapFact]
    public async Task A_TEE_device_open_to_its_owner_alone_still_opens_read_write()
    {
        // As on a guest, where /dev/sev-guest and /dev/tdx_guest are rw for root only and the serving host runs as root:
        // the owner's permission bits need no capability (CAP_DAC_OVERRIDE is for files the mode closes to the caller).
        var device = Path.Combine(Directory.CreateDirectory(Path.Combine(Root, "dev")).FullName, "sev-guest");
        File.WriteAllText(device, "");
        File.SetUnixFileMode(device, UnixFileMode.UserRead | UnixFileMode.UserWrite);
        var options = Options(["/bin/sh", "-c", """
            grep CapEff /proc/self/status
            echo request >> /dev/sev-guest && cat /dev/sev-guest
            """, "morph-init"]) with
        {
            // No stand-in for configfs-tsm: bubblewrap cannot make its mount point in a read-only /sys that lacks it.
            TeeInterfaces = new TeeInterfaces { SevGuest = device, ConfigFsTsmReport = Path.Combine(Root, "absent") },
        };

        var output = await SandboxProbe.RunAsync(options, Spec(FunctionTee.Snp, ["/bin/true"]));

        Assert.Equal(["CapEff:\t0000000000000000", "request"], output);
    }

    [Fact]
    public void The_command_line_drops_every_capability_before_the_command()
    {
        var args = new Bubblewrap("/usr/bin/bwrap", "bubblewrap (test)").Wrap(["/bin/true"], [], []).ToList();

        var drop = Enumerable.Range(0, args.Count - 1).Single(i => args[i] == "--cap-drop");
        Assert.Equal("ALL", args[drop + 1]);
        Assert.True(drop < args.IndexOf("--"), string.Join(' ', args));
    }

    private RuntimeOptions Options(IReadOnlyList<string> morphInit) => new()
    {
        DataDirectory = Path.Combine(Root, "data"),
        Sandbox = SandboxMode.Required,
        KmsUrl = new Uri("https://127.0.0.1:1/"),
        SimulatedTeeDirectory = Path.Combine(Root, "simulated-tee"),
        MorphInit = morphInit,
    };

    private FunctionSpec Spec(FunctionTee tee, IReadOnlyList<string> command)
    {
        var bundle = Directory.CreateDirectory(Path.Combine(Root, "bundle")).FullName;
        return new FunctionSpec { Name = "probe", Tee = tee, Bundle = bundle, Command = command };
    }
}
