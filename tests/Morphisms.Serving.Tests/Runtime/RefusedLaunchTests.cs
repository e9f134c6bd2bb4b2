using System.ComponentModel;
using System.Security.Cryptography;
using Morphisms.Serving.Revisions;
using Morphisms.Serving.Runtime;
using Morphisms.Serving.Spec;

namespace Morphisms.Serving.Tests;

/// <summary>
/// A launch refused before its process starts leaves nothing behind: the supervisor retries under a new instance id, so
/// each refusal's directory (with the launch configuration already written into it) would otherwise pile up.
/// </summary>
public sealed class RefusedLaunchTests : IDisposable
{
    private readonly string _root = Directory.CreateDirectory(Path.Combine("/var/tmp", "morph-refused-" + Convert.ToHexStringLower(RandomNumberGenerator.GetBytes(6)))).FullName;

    private string Data => Path.Combine(_root, "data");

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
            SimulatedTeeDirectory = Path.Combine(_root, "simulated-tee"),
            MorphInit = [Path.Combine(_root, "no-such-morph-init")],
        });

        Assert.Throws<Win32Exception>(() => launcher.Launch(Revision(), "probe-1"));

        Assert.False(Directory.Exists(InstanceDirectory));
    }

    [Fact]
    public void A_refused_launch_keeps_an_instance_directory_that_was_there_before_it()
    {
        var earlier = Path.Combine(Directory.CreateDirectory(InstanceDirectory).FullName, "earlier");
        File.WriteAllText(earlier, "kept");
        var launcher = Launcher(new RuntimeOptions { DataDirectory = Data, Sandbox = SandboxMode.Off, MorphInit = ["/bin/true"] });

        Assert.Throws<InvalidOperationException>(() => launcher.Launch(Revision(), "probe-1"));

        Assert.Equal("kept", File.ReadAllText(earlier));
    }

    public void Dispose()
    {
        try
        {
            Directory.Delete(_root, recursive: true);
        }
        catch (IOException)
        {
        }
    }

    private static ProcessInstanceLauncher Launcher(RuntimeOptions options) => new(options, TimeProvider.System, _ => { });

    private Revision Revision()
    {
        var bundle = Directory.CreateDirectory(Path.Combine(_root, "bundle")).FullName;
        var spec = new FunctionSpec { Name = "probe", Tee = FunctionTee.Sim, Bundle = bundle, Command = ["/bin/true"] };
        return new Revision("probe-00001", 1, spec, [], "", DateTimeOffset.UtcNow);
    }
}
