using Morphisms.Attestation.Simulated;
using Morphisms.Serving.Revisions;
using Morphisms.Serving.Runtime;
using Morphisms.Serving.Spec;

namespace Morphisms.Serving.Tests;

/// <summary>
/// What a sandboxed instance sees of the host: the system and its own paths, not the serving data directory, the user's
/// home, other instances' directories or the simulated TEE's state beyond what morph-init loads. The host paths live
/// under /var/tmp, not /tmp: the sandbox's private /tmp would hide those whatever the view.
/// </summary>
public sealed class SandboxViewTests() : HostScratch("morph-sandbox-")
{
    private const string Secret = "planted-secret-4f1c";

    [BubblewrapFact]
    public async Task An_instance_reads_its_bundle_and_writes_its_own_directory_but_not_the_data_directory_home_or_other_instances()
    {
        var planted = Plant(Path.Combine(Data, "kms", "token"));
        var other = Plant(Path.Combine(Data, "instances", "other-1", "secrets", "greeting"));
        var home = Plant(Path.Combine(Environment.GetFolderPath(Environment.SpecialFolder.UserProfile), ".morph-sandbox-probe-" + Path.GetFileName(Root)));
        try
        {
            var spec = Spec(FunctionTee.None, ["/bin/sh", "-c", """
                for f in "$DATA_FILE" "$OTHER_FILE" "$HOME_FILE"; do
                  if cat "$f" 2>/dev/null; then echo "read $f"; else echo "hidden $f"; fi
                done
                cat app.txt
                echo mine > "$OWN/written" && [ "$(cat "$OWN/written")" = mine ] && echo "wrote own"
                touch "$DATA_DIR/escape" 2>/dev/null && echo "wrote data"
                echo done
                """]) with
            {
                Env = new Dictionary<string, string>
                {
                    ["DATA_FILE"] = planted, ["OTHER_FILE"] = other, ["HOME_FILE"] = home, ["DATA_DIR"] = Data,
                    ["OWN"] = Path.Combine(Data, "instances", "probe-1"),
                },
            };

            var output = await SandboxProbe.RunAsync(new RuntimeOptions { DataDirectory = Data, Sandbox = SandboxMode.Required }, spec);

            Assert.Equal([$"hidden {planted}", $"hidden {other}", $"hidden {home}", "the bundle", "wrote own", "done"], output);
            Assert.False(File.Exists(Path.Combine(Data, "escape")));
        }
        finally
        {
            File.Delete(home);
        }
    }

    [BubblewrapFact]
    public async Task Morph_init_sees_the_simulated_TEE_keys_and_its_bundles_record_and_nothing_else_of_that_directory()
    {
        var sim = Path.Combine(Root, "simulated-tee");
        var spec = Spec(FunctionTee.Sim, ["/bin/true"]);
        var keys = Plant(Path.Combine(sim, SimulatedTeeAuthority.StateFileName));
        var record = Plant(SimulatedMeasurementCache.RecordPath(sim, spec.Bundle));
        Plant(SimulatedMeasurementCache.RecordPath(sim, Path.Combine(Root, "another-bundle")));
        Plant(Path.Combine(sim, "stray"));

        // A stand-in for morph-init that lists what it can see of the directory its --sim-dir names.
        var options = new RuntimeOptions
        {
            DataDirectory = Data,
            Sandbox = SandboxMode.Required,
            KmsUrl = new Uri("https://127.0.0.1:1/"),
            SimulatedTeeDirectory = sim,
            MorphInit = ["/bin/sh", "-c", """
                while [ $# -gt 0 ]; do [ "$1" = --sim-dir ] && sim=$2; shift; done
                find "$sim" -type f | sort
                cat "$sim/simulated-tee.json"
                """, "morph-init"],
        };

        var output = await SandboxProbe.RunAsync(options, spec);

        Assert.Equal([.. new[] { keys, record }.Order(StringComparer.Ordinal), Secret], output);
    }

    [BubblewrapFact]
    public async Task A_program_found_on_PATH_outside_the_system_runs_through_its_symlink()
    {
        // Like dotnet in ~/.dotnet, linked from a bin directory on PATH.
        var real = Path.Combine(Root, "install", "probe.sh");
        Directory.CreateDirectory(Path.GetDirectoryName(real)!);
        File.WriteAllText(real, "#!/bin/sh\necho \"probe ran as $0\"\n");
        File.SetUnixFileMode(real, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute);
        var bin = Directory.CreateDirectory(Path.Combine(Root, "bin")).FullName;
        File.CreateSymbolicLink(Path.Combine(bin, "probe"), real);
        var spec = Spec(FunctionTee.None, ["probe"]) with
        {
            Env = new Dictionary<string, string> { ["PATH"] = $"/nonexistent:{bin}:/usr/bin:/bin" },
        };

        var output = await SandboxProbe.RunAsync(new RuntimeOptions { DataDirectory = Data, Sandbox = SandboxMode.Required }, spec);

        Assert.Equal([$"probe ran as {bin}/probe"], output);
    }

    [Fact]
    public void A_bare_program_is_found_on_PATH_with_the_directory_its_symlink_leads_to_andRooted_arguments_their_directories()
    {
        var real = Path.Combine(Root, "dotnet-install", "dotnet");
        Directory.CreateDirectory(Path.GetDirectoryName(real)!);
        File.WriteAllText(real, "");
        var bin = Directory.CreateDirectory(Path.Combine(Root, "bin")).FullName;
        File.CreateSymbolicLink(Path.Combine(bin, "dotnet"), real);
        var dll = Path.Combine(Root, "app", "app.dll");
        Plant(dll);

        var paths = ProgramLocations.ForCommand(["dotnet", dll, "--flag", Path.Combine(Root, "missing")], $"relative:/nonexistent:{bin}").ToList();

        Assert.Equal([bin, Path.GetDirectoryName(real)!, Path.GetDirectoryName(dll)!, Path.Combine(Root, "missing")], paths);
        Assert.Empty(ProgramLocations.ForCommand(["./Signer"], $"{bin}"));
    }

    [Fact]
    public void The_dotnetRoots_come_from_the_instances_environment()
    {
        var arch = System.Runtime.InteropServices.RuntimeInformation.OSArchitecture.ToString().ToUpperInvariant();
        var roots = ProgramLocations.DotnetRoots(new Dictionary<string, string?>
        {
            ["DOTNET_ROOT"] = "/home/u/.dotnet", [$"DOTNET_ROOT_{arch}"] = "/opt/dotnet-arch", ["PATH"] = "/usr/bin",
        }).ToList();

        Assert.Equal(["/opt/dotnet-arch", "/home/u/.dotnet"], roots.Take(2));
    }

    private static string Plant(string path)
    {
        Directory.CreateDirectory(Path.GetDirectoryName(path)!);
        File.WriteAllText(path, Secret + "\n");
        return path;
    }

    private FunctionSpec Spec(FunctionTee tee, IReadOnlyList<string> command)
    {
        var bundle = Directory.CreateDirectory(Path.Combine(Root, "bundle")).FullName;
        File.WriteAllText(Path.Combine(bundle, "app.txt"), "the bundle\n");
        return new FunctionSpec { Name = "probe", Tee = tee, Bundle = bundle, Command = command };
    }
}
