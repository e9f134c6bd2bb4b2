using Morphisms.Serving.Hosting;
using Morphisms.Serving.Revisions;
using Morphisms.Serving.Runtime;
using Morphisms.Serving.Spec;

namespace Morphisms.Serving.Tests;

/// <summary>
/// Where morph-init is told its app serves: loopback TCP for a confidential VM or the simulated TEE, a UNIX domain
/// socket in the instance's own directory under Gramine (<c>tee: sgx</c>), where the agent refuses TCP — the host
/// kernel's — and would exit with a usage error at every start. A stand-in morph-init prints its arguments.
/// </summary>
public sealed class AgentArgumentsTests() : HostScratch("morph-agent-args-")
{

    private string Socket => Path.Combine(Data, "instances", "probe-1", ProcessInstanceLauncher.AppSocketFileName);

    [Fact]
    public async Task An_sgx_instance_serves_its_app_on_a_socket_in_its_own_directory_and_gets_no_app_port()
    {
        var args = await ArgumentsAsync(FunctionTee.Sgx, SandboxMode.Off);

        Assert.Equal(Socket, After(args, "--app-socket"));
        Assert.DoesNotContain("--app-port", args);
        Assert.Equal("gramine", After(args, "--tee"));
    }

    [Theory]
    [InlineData(FunctionTee.Sim)]
    [InlineData(FunctionTee.Snp)]
    [InlineData(FunctionTee.Tdx)]
    public async Task Other_TEEs_keep_loopback_TCP(FunctionTee tee)
    {
        var args = await ArgumentsAsync(tee, SandboxMode.Off);

        Assert.True(int.TryParse(After(args, "--app-port"), out var port) && port is > 0 and < 65536, string.Join(' ', args));
        Assert.DoesNotContain("--app-socket", args);
    }

    [BubblewrapFact]
    public async Task The_socket_path_is_writable_inside_the_sandbox_where_the_agent_and_the_app_run()
    {
        var options = Options(SandboxMode.Required, ["/bin/sh", "-c", """
            while [ $# -gt 0 ]; do [ "$1" = --app-socket ] && sock=$2; shift; done
            touch "$sock" && echo "made $sock"
            """, "morph-init"]);

        var output = await SandboxProbe.RunAsync(options, Spec(FunctionTee.Sgx));

        Assert.Equal([$"made {Socket}"], output);
    }

    [Fact]
    public void A_socket_path_longer_than_a_UNIX_socket_may_be_refuses_the_launch_naming_it()
    {
        var deep = Path.Combine(Root, new string('d', 100));
        var launcher = new ProcessInstanceLauncher(Options(SandboxMode.Off, ["/bin/true"]) with { DataDirectory = deep }, TimeProvider.System, _ => { });

        var error = Assert.Throws<InvalidOperationException>(() => launcher.Launch(new Revision("probe-00001", 1, Spec(FunctionTee.Sgx), [], "", DateTimeOffset.UtcNow), "probe-1"));

        Assert.Contains(Path.Combine(deep, "instances", "probe-1", ProcessInstanceLauncher.AppSocketFileName), error.Message, StringComparison.Ordinal);
        Assert.Contains("longer than a UNIX socket path may be", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task The_HTTP_mode_gateway_refuses_an_sgx_function_it_could_not_reach()
    {
        using var functions = new TestFunctions();
        var launcher = new FakeLauncher();
        await using var host = await functions.HostAsync(GatewayMode.Http, launcher: launcher);

        var error = await Assert.ThrowsAsync<ServingException>(() => host.DeployAsync(functions.Spec("enclave", "a", FunctionTee.Sgx), CancellationToken.None));

        Assert.StartsWith("tee: sgx serves its app on a UNIX socket", error.Message, StringComparison.Ordinal);
        Assert.Equal(0, launcher.Attempts);
    }

    private async Task<List<string>> ArgumentsAsync(FunctionTee tee, SandboxMode sandbox) =>
        await SandboxProbe.RunAsync(Options(sandbox, ["/bin/sh", "-c", "printf '%s\\n' \"$@\"", "morph-init"]), Spec(tee));

    private static string? After(List<string> args, string flag) =>
        args.IndexOf(flag) is var i and >= 0 && i + 1 < args.Count ? args[i + 1] : null;

    private RuntimeOptions Options(SandboxMode sandbox, IReadOnlyList<string> morphInit) => new()
    {
        DataDirectory = Data,
        Sandbox = sandbox,
        KmsUrl = new Uri("https://127.0.0.1:1/"),
        SimulatedTeeDirectory = Path.Combine(Root, "simulated-tee"),
        MorphInit = morphInit,
        // No TEE interface is needed to see the arguments; none is shown.
        TeeInterfaces = new TeeInterfaces
        {
            SevGuest = Path.Combine(Root, "absent"), TdxGuest = Path.Combine(Root, "absent"), TdxMrConfigId = Path.Combine(Root, "absent"),
            SgxEnclave = Path.Combine(Root, "absent"), SgxProvision = Path.Combine(Root, "absent"),
            ConfigFsTsmReport = Path.Combine(Root, "absent"), AesmDirectory = Path.Combine(Root, "absent"),
        },
    };

    private FunctionSpec Spec(FunctionTee tee)
    {
        var bundle = Directory.CreateDirectory(Path.Combine(Root, "bundle")).FullName;
        return new FunctionSpec { Name = "probe", Tee = tee, Bundle = bundle, Command = ["/bin/true"] };
    }
}
