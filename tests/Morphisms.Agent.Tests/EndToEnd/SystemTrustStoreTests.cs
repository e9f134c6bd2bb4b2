using System.Diagnostics;

namespace Morphisms.Agent.Tests.EndToEnd;

/// <summary>
/// morph-init hides the OS's certificate authorities from itself (they cost ~80 ms of every cold start to load, and the
/// agent trusts none of them). Run in child processes: hiding changes the process's native environment for good.
/// </summary>
public sealed class SystemTrustStoreTests
{
    [Fact]
    public async Task Hiding_leaves_the_process_an_empty_os_trust_store()
    {
        Assert.Equal(0, await ProbeAsync(hide: true));

        // Without hiding, the same probe sees the OS's CAs (where the machine has any: a bare image may not).
        if (File.Exists("/etc/ssl/certs/ca-certificates.crt"))
        {
            Assert.True(await ProbeAsync(hide: false) > 0);
        }
    }

    private static async Task<int> ProbeAsync(bool hide)
    {
        var info = new ProcessStartInfo(TestProcesses.DotnetHost) { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        foreach (var arg in new[] { typeof(TestAppEntry).Assembly.Location, "trust-probe" }.Concat(hide ? ["--hide"] : []))
        {
            info.ArgumentList.Add(arg);
        }

        // The probe must see what a real morph-init sees, not a trust location this test run was given.
        info.Environment.Remove("SSL_CERT_FILE");
        info.Environment.Remove("SSL_CERT_DIR");
        using var probe = Process.Start(info)!;
        var output = await probe.StandardOutput.ReadToEndAsync();
        var errors = await probe.StandardError.ReadToEndAsync();
        await probe.WaitForExitAsync().WaitAsync(TimeSpan.FromSeconds(60));
        Assert.True(probe.ExitCode == 0, errors);
        return int.Parse(output.Trim(), System.Globalization.CultureInfo.InvariantCulture);
    }
}
