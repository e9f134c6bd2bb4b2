using Morphisms.Serving.Revisions;
using Morphisms.Serving.Runtime;
using Morphisms.Serving.Spec;

namespace Morphisms.Serving.Tests;

/// <summary>Runs one instance of a spec through the real launcher (sandboxed as the options say) to its end.</summary>
internal static class SandboxProbe
{
    /// <summary>What the instance printed on stdout; fails the test, with its output, unless it exits 0.</summary>
    public static async Task<List<string>> RunAsync(RuntimeOptions options, FunctionSpec spec)
    {
        var launcher = new ProcessInstanceLauncher(options, TimeProvider.System, _ => { });
        var instance = launcher.Launch(new Revision("probe-00001", 1, spec, [], "", DateTimeOffset.UtcNow), "probe-1");
        try
        {
            var code = await instance.Exited.WaitAsync(TimeSpan.FromSeconds(30));
            var lines = instance.Logs.Snapshot();
            Assert.True(code == 0, $"exit {code}: {string.Join('\n', lines.Select(l => $"{l.Stream}: {l.Text}"))}");
            return [.. lines.Where(l => l.Stream == "stdout").Select(l => l.Text)];
        }
        finally
        {
            await instance.DisposeAsync();
        }
    }
}
