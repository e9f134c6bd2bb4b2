using System.Security.Cryptography;
using Morphisms.Serving.Revisions;
using Morphisms.Serving.Runtime;
using Morphisms.Serving.Spec;

namespace Morphisms.Serving.Tests;

/// <summary>
/// An instance's cgroup limits hold for everything it runs: it joins its groups before its program starts. Joined from
/// outside once it ran, what it had forked by then stayed outside both limits — under bubblewrap the spawned process
/// is bwrap, which clones the sandbox, and the app in it, at once.
/// </summary>
public sealed class CgroupLimitTests() : HostScratch("morph-cgroup-")
{
    private const string CgroupRoot = "/sys/fs/cgroup";

    [CgroupFact]
    public Task A_child_the_instance_forks_at_once_is_inside_its_limits() => ChildIsInsideAsync(SandboxMode.Off);

    [CgroupFact(bubblewrap: true)]
    public Task A_child_forked_at_once_inside_bubblewrap_is_inside_the_limits() => ChildIsInsideAsync(SandboxMode.Required);

    /// <summary>
    /// The groups are made before the process: a launch refused (here a program that does not exist, which the joining
    /// wrapper leaves to Process.Start so that it still fails the launch) takes them away again.
    /// </summary>
    [CgroupFact]
    public void A_refused_launch_fails_as_before_and_leaves_no_group()
    {
        var id = "cgtest-" + Convert.ToHexStringLower(RandomNumberGenerator.GetBytes(4));
        var bundle = Directory.CreateDirectory(Path.Combine(Root, "bundle")).FullName;
        var spec = new FunctionSpec { Name = "probe", Tee = FunctionTee.None, Bundle = bundle, Command = ["/nonexistent/app"] };
        var options = new RuntimeOptions { DataDirectory = Data, Sandbox = SandboxMode.Off, MemoryLimitBytes = 256L << 20, PidsLimit = 64 };
        var launcher = new ProcessInstanceLauncher(options, TimeProvider.System, _ => { });

        Assert.ThrowsAny<System.ComponentModel.Win32Exception>(() => launcher.Launch(new Revision("probe-00001", 1, spec, [], "", DateTimeOffset.UtcNow), id));

        Assert.False(Directory.Exists(Path.Combine(CgroupRoot, "memory", "morphisms", id)), "the refused launch left its memory group");
        Assert.False(Directory.Exists(Path.Combine(CgroupRoot, "pids", "morphisms", id)), "the refused launch left its pids group");
    }

    private async Task ChildIsInsideAsync(SandboxMode sandbox)
    {
        var id = "cgtest-" + Convert.ToHexStringLower(RandomNumberGenerator.GetBytes(4));
        var bundle = Directory.CreateDirectory(Path.Combine(Root, "bundle")).FullName;

        // cat is forked by the app's shell as its very first act, and prints the groups it started in.
        var spec = new FunctionSpec { Name = "probe", Tee = FunctionTee.None, Bundle = bundle, Command = ["/bin/sh", "-c", "cat /proc/self/cgroup"] };
        var options = new RuntimeOptions { DataDirectory = Data, Sandbox = sandbox, MemoryLimitBytes = 256L << 20, PidsLimit = 64 };
        var launcher = new ProcessInstanceLauncher(options, TimeProvider.System, _ => { });
        var instance = launcher.Launch(new Revision("probe-00001", 1, spec, [], "", DateTimeOffset.UtcNow), id);
        List<string> output;
        string log;
        try
        {
            var code = await instance.Exited.WaitAsync(TimeSpan.FromSeconds(60));
            var lines = instance.Logs.Snapshot();
            log = string.Join('\n', lines.Select(l => $"{l.Stream}: {l.Text}"));
            Assert.True(code == 0, $"exit {code}: {log}");
            output = [.. lines.Where(l => l.Stream == "stdout").Select(l => l.Text)];
        }
        finally
        {
            await instance.DisposeAsync();
        }

        foreach (var controller in new[] { "memory", "pids" })
        {
            // "4:memory:/morphisms/ID": the path below the hierarchy's root (no cgroup namespace in the sandbox).
            Assert.True(output.Any(l => l.Split(':') is [_, var controllers, var path] && controllers.Split(',').Contains(controller) && path.EndsWith($"/morphisms/{id}", StringComparison.Ordinal)),
                $"the child is not in the instance's {controller} group:\n{log}");
        }

        Assert.Contains("cgroup: joined before its program started", log, StringComparison.Ordinal);

        // Not at once: bwrap exits as soon as the sandbox's init reports the app's status, while the init is still exiting.
        await Eventually.True(() => !Directory.Exists(Path.Combine(CgroupRoot, "memory", "morphisms", id)), "the memory group removed after the instance");
        await Eventually.True(() => !Directory.Exists(Path.Combine(CgroupRoot, "pids", "morphisms", id)), "the pids group removed after the instance");
    }
}

/// <summary>
/// A fact skipped, with the reason, where the cgroup v1 memory and pids hierarchies are missing or not writable (not
/// root, no delegation), and where bubblewrap does not work when the test needs it.
/// </summary>
public sealed class CgroupFactAttribute : FactAttribute
{
    private static readonly string? Unusable = Probe();

    /// <summary>Sets <see cref="FactAttribute.Skip"/> when groups cannot be made here, or <paramref name="bubblewrap"/> is needed and does not work.</summary>
    public CgroupFactAttribute(bool bubblewrap = false)
    {
        if (Unusable is { } reason)
        {
            Skip = $"{reason}: instances get no cgroup limits here, so joining them cannot be tested";
        }
        else if (bubblewrap && Bubblewrap.Probe(out var missing) is null)
        {
            Skip = $"{missing}: the sandbox cannot be tested here (scripts/install-test-deps.sh installs bubblewrap)";
        }
    }

    private static string? Probe()
    {
        foreach (var controller in new[] { "memory", "pids" })
        {
            var hierarchy = Path.Combine("/sys/fs/cgroup", controller);
            if (!File.Exists(Path.Combine(hierarchy, "cgroup.procs")))
            {
                return $"no cgroup v1 {controller} hierarchy at {hierarchy}";
            }

            var probe = Path.Combine(hierarchy, "morphisms", "probe-" + Convert.ToHexStringLower(RandomNumberGenerator.GetBytes(4)));
            try
            {
                Directory.CreateDirectory(probe);
                Directory.Delete(probe);
            }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException)
            {
                return $"cannot make a group under {hierarchy}: {e.Message}";
            }
        }

        return null;
    }
}
