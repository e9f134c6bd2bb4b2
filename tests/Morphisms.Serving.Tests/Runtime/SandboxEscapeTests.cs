using System.Security.Cryptography;
using Morphisms.Serving.Hosting;
using Morphisms.Serving.Revisions;
using Morphisms.Serving.Runtime;
using Morphisms.Serving.Spec;

namespace Morphisms.Serving.Tests;

/// <summary>
/// The sandbox's allowlist is built from paths the spec, the bundle and the environment choose, so a spec must not be
/// able to widen it to the host's state: each path is resolved and a launch that would show <c>/</c>, <c>/dev</c> or the
/// data directory is refused. And the serving process's own variables (tokens it was given) do not reach instances.
/// </summary>
public sealed class SandboxEscapeTests() : HostScratch("morph-escape-")
{

    public static TheoryData<string> Escapes => new() { "dotnet-root", "data-argument", "bundle-symlink", "dev-argument", "root-bundle", "root-file" };

    [BubblewrapTheory]
    [MemberData(nameof(Escapes))]
    public void A_spec_that_would_show_the_host_or_its_state_is_refused(string escape)
    {
        var dataFile = Plant(Path.Combine(Data, "serving-control-token"));
        var spec = Spec(["/bin/true"]);
        switch (escape)
        {
            case "dotnet-root":
                spec = spec with { Env = new Dictionary<string, string> { ["DOTNET_ROOT"] = "/" } };
                break;
            case "data-argument":
                spec = spec with { Command = ["/bin/cat", dataFile] };
                break;
            case "bundle-symlink":
                var target = Plant(Path.Combine(Data, "run"));
                File.CreateSymbolicLink(Path.Combine(spec.Bundle, "run"), target);
                spec = spec with { Command = ["run"] };
                break;
            case "dev-argument":
                spec = spec with { Command = ["/bin/cat", "/dev/stdout"] };
                break;
            case "root-bundle":
                spec = spec with { Bundle = "/" };
                break;
            case "root-file":
                // Like /entrypoint.sh: its directory is / itself.
                spec = Directory.EnumerateFiles("/").FirstOrDefault() is { } atRoot ? spec with { Command = ["/bin/cat", atRoot] } : spec with { Bundle = "/" };
                break;
        }

        var launcher = new ProcessInstanceLauncher(new RuntimeOptions { DataDirectory = Data, Sandbox = SandboxMode.Required }, TimeProvider.System, _ => { });
        var error = Assert.Throws<InvalidOperationException>(() => launcher.Launch(new Revision("probe-00001", 1, spec, [], "", DateTimeOffset.UtcNow), "probe-1"));

        Assert.Contains("refusing to start", error.Message, StringComparison.Ordinal);
        Assert.False(Directory.Exists(Path.Combine(Data, "instances", "probe-1")), "the refused launch left its instance directory");
    }

    [BubblewrapFact]
    public async Task The_host_logs_why_it_refused_and_starts_nothing()
    {
        using var functions = new TestFunctions();
        await using var host = await functions.HostAsync(GatewayMode.Http);
        var spec = functions.Spec("wide", "a", FunctionTee.None, new ScaleSpec { Min = 1 }) with
        {
            Command = ["/bin/sh", "-c", "echo started; exec sleep 60"],
            Env = new Dictionary<string, string> { ["DOTNET_ROOT"] = "/" },
        };

        await host.DeployAsync(spec, CancellationToken.None);

        await Eventually.True(() => functions.Log.ToString().Contains("the sandbox would show /, which is the host's whole file system", StringComparison.Ordinal), "the refusal is logged", seconds: 20);
        Assert.DoesNotContain(host.Logs("wide", 100), l => l.Line.Text == "started");
    }

    [BubblewrapFact]
    public async Task A_dotnetRoot_is_shown_without_its_certificate_store_or_tools()
    {
        // A user's ~/.dotnet: the runtime beside corefx/cryptography/x509stores, which holds private keys.
        var root = Path.Combine(Root, "dotnet-home");
        Plant(Path.Combine(root, "dotnet"));
        Plant(Path.Combine(root, "shared", "Microsoft.NETCore.App", "marker"));
        var key = Plant(Path.Combine(root, "corefx", "cryptography", "x509stores", "my", "key.pfx"));
        var spec = Spec(["/bin/sh", "-c", """
            cat "$DOTNET_ROOT/shared/Microsoft.NETCore.App/marker"
            if cat "$KEY" 2>/dev/null; then echo "read key"; else echo "hidden key"; fi
            """]) with
        {
            Env = new Dictionary<string, string> { ["DOTNET_ROOT"] = root, ["KEY"] = key },
        };

        var output = await SandboxProbe.RunAsync(new RuntimeOptions { DataDirectory = Data, Sandbox = SandboxMode.Required }, spec);

        Assert.Equal([Secret, "hidden key"], output);
    }

    [Fact]
    public async Task A_variable_of_the_serving_process_does_not_reach_the_instance_but_PATH_and_the_specs_env_do()
    {
        var name = "MORPH_TEST_LEAK_" + Convert.ToHexString(RandomNumberGenerator.GetBytes(4));
        Environment.SetEnvironmentVariable(name, "host-secret");
        try
        {
            var spec = Spec(["/bin/sh", "-c", $"echo \"leak=${name}\"; echo \"path=${{PATH:+set}}\"; echo \"rev=$REV\""]) with
            {
                Env = new Dictionary<string, string> { ["REV"] = "7" },
            };

            var output = await SandboxProbe.RunAsync(new RuntimeOptions { DataDirectory = Data, Sandbox = SandboxMode.Off }, spec);

            Assert.Equal(["leak=", "path=set", "rev=7"], output);
        }
        finally
        {
            Environment.SetEnvironmentVariable(name, null);
        }
    }

    private const string Secret = "planted-4b2e";

    private static string Plant(string path)
    {
        Directory.CreateDirectory(Path.GetDirectoryName(path)!);
        File.WriteAllText(path, Secret + "\n");
        return path;
    }

    private FunctionSpec Spec(IReadOnlyList<string> command)
    {
        var bundle = Directory.CreateDirectory(Path.Combine(Root, "bundle")).FullName;
        return new FunctionSpec { Name = "probe", Tee = FunctionTee.None, Bundle = bundle, Command = command };
    }

}

/// <summary>A theory skipped, with the reason, where bubblewrap is missing or cannot create its namespaces.</summary>
public sealed class BubblewrapTheoryAttribute : TheoryAttribute
{
    /// <summary>Sets <see cref="FactAttribute.Skip"/> when <see cref="Bubblewrap.Probe"/> finds no working bubblewrap.</summary>
    public BubblewrapTheoryAttribute()
    {
        if (Bubblewrap.Probe(out var reason) is null)
        {
            Skip = $"{reason}: the sandbox cannot be tested here (scripts/install-test-deps.sh installs bubblewrap)";
        }
    }
}
