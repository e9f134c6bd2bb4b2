using System.ComponentModel;
using Morphisms.Serving.Revisions;
using Morphisms.Serving.Runtime;
using Morphisms.Serving.Spec;

namespace Morphisms.Serving.Tests;

/// <summary>
/// An instance's directory lives exactly as long as the instance: a launch refused before its process starts leaves
/// nothing behind (the supervisor retries under a new instance id, so each refusal's directory would otherwise pile up),
/// an exited instance's goes with it (an agent that was killed could not wipe its secrets), and what an earlier run of
/// the host left under a reused id is cleared first.
/// </summary>
public sealed class RefusedLaunchTests() : HostScratch("morph-refused-")
{

    private string InstanceDirectory => Path.Combine(Data, "instances", "probe-1");

    [Fact]
    public void A_launch_refused_before_its_process_starts_removes_the_instance_directory_it_made()
    {
        // No KMS URL: refused after launch.json was written.
        var launcher = Launcher(new RuntimeOptions { DataDirectory = Data, Sandbox = SandboxMode.Off, MorphInit = ["/bin/true"] });

        var error = Assert.Throws<InvalidOperationException>(() => launcher.Launch(Revision(), "probe-1"));

        Assert.Contains("needs the KMS URL", error.Message, StringComparison.Ordinal);
        Assert.False(Directory.Exists(InstanceDirectory));
    }

    [Fact]
    public void A_program_that_cannot_start_leaves_no_instance_directory()
    {
        var launcher = Launcher(new RuntimeOptions
        {
            DataDirectory = Data,
            Sandbox = SandboxMode.Off,
            KmsUrl = new Uri("https://127.0.0.1:1/"),
            SimulatedTeeDirectory = Path.Combine(Root, "simulated-tee"),
            MorphInit = [Path.Combine(Root, "no-such-morph-init")],
        });

        Assert.Throws<Win32Exception>(() => launcher.Launch(Revision(), "probe-1"));

        Assert.False(Directory.Exists(InstanceDirectory));
    }

    [Fact]
    public async Task An_instances_directory_goes_when_its_process_exits()
    {
        var launcher = Launcher(new RuntimeOptions
        {
            DataDirectory = Data,
            Sandbox = SandboxMode.Off,
            KmsUrl = new Uri("https://127.0.0.1:1/"),
            SimulatedTeeDirectory = Path.Combine(Root, "simulated-tee"),

            // A stand-in for an agent killed before it could wipe its secrets: it writes one and exits.
            MorphInit = ["/bin/sh", "-c", "mkdir -p \"$1\" && echo s3cret > \"$1/key\" && exit 9", "agent", InstanceDirectory + "/secrets"],
        });

        await using var instance = launcher.Launch(Revision(), "probe-1");
        Assert.Equal(9, await instance.Exited.WaitAsync(TimeSpan.FromSeconds(30)));

        // Gone by the time Exited completes: a host that stops once its instances have exited leaves nothing behind.
        Assert.False(Directory.Exists(InstanceDirectory));
    }

    [Fact]
    public void What_an_earlier_run_left_is_removed_when_the_runtime_starts()
    {
        // A host that was killed: its agents could not wipe their secrets, and its ids may never be launched again.
        var secret = Path.Combine(Directory.CreateDirectory(Path.Combine(Data, "instances", "gone-00001-007", "secrets")).FullName, "key");
        File.WriteAllText(secret, "the killed instance's secret");
        File.WriteAllText(Path.Combine(Data, "instances", "stray"), "");
        var log = new List<string>();

        _ = new InstanceDirectories(Data, log.Add);

        Assert.Empty(Directory.EnumerateFileSystemEntries(Path.Combine(Data, "instances")));
        Assert.Contains("runtime: removed 2 instance directories left by an earlier run (their secrets with them)", log);
    }

    [NotRootFact]
    public void A_subdirectory_the_instance_made_unwritable_does_not_keep_its_directory()
    {
        var directories = new InstanceDirectories(Data, _ => { });
        var lease = directories.Acquire("probe-1");
        var locked = Directory.CreateDirectory(Path.Combine(lease.Path, "locked")).FullName;
        File.WriteAllText(Path.Combine(locked, "file"), "x");
        File.SetUnixFileMode(locked, UnixFileMode.UserRead | UnixFileMode.UserExecute);

        lease.Release();

        Assert.False(Directory.Exists(InstanceDirectory));
    }

    [Fact]
    public void A_directory_left_by_an_earlier_run_is_cleared_before_the_instance_gets_it()
    {
        // Instance ids repeat across runs of the host; what a killed one left (its secrets, say) is not the new one's.
        var earlier = Path.Combine(Directory.CreateDirectory(Path.Combine(InstanceDirectory, "secrets")).FullName, "key");
        File.WriteAllText(earlier, "the earlier instance's secret");
        var directories = new InstanceDirectories(Data, _ => { });

        var lease = directories.Acquire("probe-1");

        Assert.Equal(Path.GetFullPath(InstanceDirectory), lease.Path);
        Assert.True(Directory.Exists(InstanceDirectory));
        Assert.Empty(Directory.EnumerateFileSystemEntries(InstanceDirectory));
    }

    [Fact]
    public void An_instance_that_exits_late_does_not_remove_the_directory_a_new_instance_holds_under_the_same_id()
    {
        var directories = new InstanceDirectories(Data, _ => { });
        var old = directories.Acquire("probe-1");
        Assert.Throws<InvalidOperationException>(() => directories.Acquire("probe-1"));
        old.Release();
        Assert.False(Directory.Exists(InstanceDirectory));

        var current = directories.Acquire("probe-1");
        File.WriteAllText(Path.Combine(current.Path, "launch.json"), "{}");
        old.Release();

        Assert.True(File.Exists(Path.Combine(current.Path, "launch.json")));
        current.Release();
        Assert.False(Directory.Exists(InstanceDirectory));
    }

    private static ProcessInstanceLauncher Launcher(RuntimeOptions options) => new(options, TimeProvider.System, _ => { });

    private Revision Revision()
    {
        var bundle = Directory.CreateDirectory(Path.Combine(Root, "bundle")).FullName;
        var spec = new FunctionSpec { Name = "probe", Tee = FunctionTee.Sim, Bundle = bundle, Command = ["/bin/true"] };
        return new Revision("probe-00001", 1, spec, [], "", DateTimeOffset.UtcNow);
    }
}

/// <summary>A fact that runs only as an unprivileged user: root ignores the file modes it is about.</summary>
public sealed class NotRootFactAttribute : FactAttribute
{
    /// <summary>Sets <see cref="FactAttribute.Skip"/> when running as root.</summary>
    public NotRootFactAttribute()
    {
        if (Environment.UserName == "root")
        {
            Skip = "runs as an unprivileged user only: root may delete whatever the file modes say";
        }
    }
}
