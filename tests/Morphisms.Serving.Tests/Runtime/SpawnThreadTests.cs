using System.ComponentModel;
using System.Diagnostics;
using Morphisms.Serving.Runtime;

namespace Morphisms.Serving.Tests;

/// <summary>
/// Instances are forked from a thread that outlives them: bubblewrap's <c>--die-with-parent</c> kills the sandbox when
/// the forking thread exits, and thread-pool threads exit whenever the pool shrinks.
/// </summary>
public sealed class SpawnThreadTests
{
    [BubblewrapFact]
    public void A_sandboxed_process_outlives_the_thread_that_asked_for_it()
    {
        var bwrap = Bubblewrap.Probe(out var reason) ?? throw new InvalidOperationException(reason);
        var info = StartInfo(bwrap.Wrap(["/bin/sh", "-c", "echo up; exec /bin/sleep 30"], [], []));
        info.RedirectStandardOutput = true;
        using var process = new Process { StartInfo = info };

        // A short-lived caller, like a thread-pool thread the pool retires after the launch. It stays until the command
        // inside runs: bubblewrap arms the parent-death signal during its set-up, and a parent thread gone before then
        // would go unnoticed.
        string? first = null;
        Exception? failed = null;
        var caller = new Thread(() =>
        {
            try
            {
                SpawnThread.Start(process);
                first = process.StandardOutput.ReadLine();
            }
            catch (Exception e)
            {
                failed = e;
            }
        });
        caller.Start();
        caller.Join();
        Assert.Null(failed);

        try
        {
            Assert.Equal("up", first);

            // The parent-death signal is sent as the forking thread exits, so a wrong parent shows within milliseconds.
            Assert.False(process.WaitForExit(500), $"the sandbox died with the thread that asked for it (exit {(process.HasExited ? process.ExitCode : 0)})");
        }
        finally
        {
            process.Kill(entireProcessTree: true);
            process.WaitForExit();
        }
    }

    [Fact]
    public void A_failed_start_reaches_the_caller_and_the_next_start_still_works()
    {
        using var missing = new Process { StartInfo = StartInfo(["/nonexistent/morph-init"]) };
        Assert.Throws<Win32Exception>(() => SpawnThread.Start(missing));

        using var next = new Process { StartInfo = StartInfo(["/bin/true"]) };
        SpawnThread.Start(next);
        Assert.True(next.WaitForExit(10_000));
        Assert.Equal(0, next.ExitCode);
    }

    private static ProcessStartInfo StartInfo(IReadOnlyList<string> command)
    {
        var info = new ProcessStartInfo(command[0]) { UseShellExecute = false };
        foreach (var arg in command.Skip(1))
        {
            info.ArgumentList.Add(arg);
        }

        return info;
    }
}

/// <summary>A fact skipped, with the reason, where bubblewrap is missing or cannot create its namespaces.</summary>
public sealed class BubblewrapFactAttribute : FactAttribute
{
    /// <summary>Sets <see cref="FactAttribute.Skip"/> when <see cref="Bubblewrap.Probe"/> finds no working bubblewrap.</summary>
    public BubblewrapFactAttribute()
    {
        if (Bubblewrap.Probe(out var reason) is null)
        {
            Skip = $"{reason}: the sandbox cannot be tested here (scripts/install-test-deps.sh installs bubblewrap)";
        }
    }
}
