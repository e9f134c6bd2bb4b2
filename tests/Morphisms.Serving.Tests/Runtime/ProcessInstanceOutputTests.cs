using System.Diagnostics;
using System.Net;
using System.Net.Sockets;
using Morphisms.Serving.Runtime;

namespace Morphisms.Serving.Tests;

[CollectionDefinition(Name, DisableParallelization = true)]
public sealed class AllocationMeasuringCollection
{
    public const string Name = "allocation measuring (runs alone)";
}

/// <summary>
/// An instance's output must not be able to grow the serving host's memory: 50 MB without a newline used to be
/// held whole by the line reader before the log ring cut it to 4096 characters.
/// </summary>
[Collection(AllocationMeasuringCollection.Name)]
public sealed class ProcessInstanceOutputTests
{
    private const int Flood = 50_000_000;

    // Shell: waits until the last background child ($!) has left the instance's process group for a session of its own
    // (/proc/PID/stat's sixth field), so the group kill when the shell exits misses it whatever the timing.
    private const string UntilOwnSession = "until [ \"$(cut -d' ' -f6 /proc/$!/stat)\" = $! ]; do sleep 0.01; done";

    [Fact]
    public async Task A_flood_without_newlines_is_cut_and_read_in_bounded_memory_and_normal_lines_still_arrive()
    {
        var dir = Directory.CreateTempSubdirectory("morph-flood-").FullName;
        var go = Path.Combine(dir, "go");
        using var tls = new TcpListener(IPAddress.Loopback, 0);
        tls.Start();
        var coldStart = """{"event":"cold_start","phases_ms":{"keygen":1,"login":2,"secrets":3,"app_ready":4},"total_ms":10}""";
        var info = new ProcessStartInfo("/bin/sh")
        {
            ArgumentList =
            {
                "-c",
                // stderr: a flood, then the agent's cold_start line, which must still be recognised; then, once the
                // instance is ready, stdout: a flood, a normal line, and an exit that must not lose it.
                $"""
                head -c {Flood} /dev/zero | tr '\0' 'y' >&2; printf '\n%s\n' "$COLD" >&2
                while [ ! -e "$GO" ]; do sleep 0.02; done
                head -c {Flood} /dev/zero | tr '\0' 'x'; printf '\nafter the flood\n'
                """,
            },
            Environment = { ["COLD"] = coldStart, ["GO"] = go },
        };

        GC.Collect();
        var allocatedBefore = GC.GetTotalAllocatedBytes(precise: true);
        var logs = new LogRing(100);
        var instance = new ProcessInstance("flood-1", info, (IPEndPoint)tls.LocalEndpoint, new IPEndPoint(IPAddress.Loopback, 1), logs, TimeProvider.System, sandboxed: false, onExit: null);
        try
        {
            await instance.Ready.WaitAsync(TimeSpan.FromSeconds(60));
            Assert.Equal(3, instance.ColdStart!.AttestationMs);
            Assert.Equal(3, instance.ColdStart.SecretsMs);

            await File.WriteAllTextAsync(go, "");
            Assert.Equal(0, await instance.Exited.WaitAsync(TimeSpan.FromSeconds(60)));
            var allocated = GC.GetTotalAllocatedBytes(precise: true) - allocatedBefore;

            // Exited completes only once both streams are drained, so the last line is already there.
            var lines = logs.Snapshot();
            var stdout = lines.Where(l => l.Stream == "stdout").Select(l => l.Text).ToList();
            var stderr = lines.Where(l => l.Stream == "stderr").Select(l => l.Text).ToList();
            Assert.Equal([new string('x', ProcessInstance.MaxLineLength) + "…", "after the flood"], stdout);
            Assert.Equal([new string('y', ProcessInstance.MaxLineLength) + "…", coldStart], stderr);

            // 2 × 50 M characters went through; a reader holding the line would have allocated > 200 MB per stream.
            Assert.True(allocated < 32 * 1024 * 1024, $"{allocated / (1024 * 1024)} MB allocated while reading {2 * Flood / 1_000_000} MB of output");
        }
        finally
        {
            await instance.DisposeAsync();
            Directory.Delete(dir, recursive: true);
        }
    }

    [Fact]
    public async Task Exited_waits_until_the_output_is_drained_even_past_the_process_itself()
    {
        // The shell exits at once; a child it left behind holds the pipes and writes its lines later. In the instance's
        // process group it would be killed when the shell exits, so it leaves the group first (as a daemon would).
        var info = new ProcessStartInfo("/bin/sh")
        {
            ArgumentList = { "-c", $"echo first; setsid sh -c 'sleep 0.5; echo late; echo late-err >&2; printf \"no line end\"' & {UntilOwnSession}; exit 3" },
        };
        var logs = new LogRing(100);
        var instance = new ProcessInstance("drain-1", info, null, new IPEndPoint(IPAddress.Loopback, 1), logs, TimeProvider.System, sandboxed: false, onExit: null);
        try
        {
            Assert.Equal(3, await instance.Exited.WaitAsync(TimeSpan.FromSeconds(30)));
            var lines = logs.Snapshot();
            Assert.Equal(["first", "late", "no line end"], lines.Where(l => l.Stream == "stdout").Select(l => l.Text));
            Assert.Equal(["late-err"], lines.Where(l => l.Stream == "stderr").Select(l => l.Text));
            Assert.Equal("exited with code 3", lines[^1].Text);
            await Assert.ThrowsAsync<InvalidOperationException>(() => instance.Ready);
        }
        finally
        {
            await instance.DisposeAsync();
        }
    }

    [Fact]
    public async Task What_an_exited_instance_left_running_is_killed_with_it()
    {
        // A tee: none app that runs `worker & exec server` and dies, or an app whose morph-init was OOM-killed (no
        // bubblewrap, whose PID namespace would take it along): the child ran on unsupervised, after `rm` too.
        var info = new ProcessStartInfo("/bin/sh") { ArgumentList = { "-c", "sleep 1000 & echo $!; exit 3" } };
        var logs = new LogRing(100);
        var instance = new ProcessInstance("leftover-1", info, null, new IPEndPoint(IPAddress.Loopback, 1), logs, TimeProvider.System, sandboxed: false, onExit: null);
        var child = 0;
        try
        {
            Assert.Equal(3, await instance.Exited.WaitAsync(TimeSpan.FromSeconds(10)));
            child = logs.Snapshot().Where(l => l.Stream == "stdout").Select(l => int.TryParse(l.Text, out var pid) ? pid : 0).Single(pid => pid > 0);
            await Eventually.True(() => !Alive(child), $"the sleep {child} the instance left is gone", seconds: 5);
        }
        finally
        {
            if (child > 0 && Alive(child))
            {
                using var leftover = Process.GetProcessById(child);
                leftover.Kill();
            }

            await instance.DisposeAsync();
        }
    }

    // Running, as opposed to gone or a zombie its new parent has not reaped yet (/proc/PID/stat: "pid (comm) state ...").
    private static bool Alive(int pid)
    {
        try
        {
            var stat = File.ReadAllText($"/proc/{pid}/stat");
            return stat[stat.LastIndexOf(')')..] is not [')', ' ', 'Z' or 'X', ..];
        }
        catch (IOException)
        {
            return false;
        }
    }

    [Fact]
    public async Task Exited_completes_soon_after_the_process_even_when_a_child_it_left_holds_the_output_open()
    {
        // A child that left the instance's process group (so the group kill at exit misses it) keeps the output open as
        // long as it lives, and an instance that never counts as exited stays routed and holds up every stop (and the
        // deploy lock with it).
        var info = new ProcessStartInfo("/bin/sh") { ArgumentList = { "-c", $"setsid sleep 1000 & echo $!; {UntilOwnSession}; exit 3" } };
        var logs = new LogRing(100);
        var instance = new ProcessInstance("orphan-1", info, null, new IPEndPoint(IPAddress.Loopback, 1), logs, TimeProvider.System, sandboxed: false, onExit: null);
        try
        {
            Assert.Equal(3, await instance.Exited.WaitAsync(ProcessInstance.OutputGrace + TimeSpan.FromSeconds(8)));
            Assert.Equal("exited with code 3", logs.Snapshot()[^1].Text);
            Assert.Contains(logs.Snapshot(), l => l.Stream == "runtime" && l.Text.Contains("still open", StringComparison.Ordinal));
            await instance.StopAsync(TimeSpan.FromSeconds(1)).WaitAsync(TimeSpan.FromSeconds(5));
        }
        finally
        {
            // The orphaned sleep, by the pid it printed.
            foreach (var line in logs.Snapshot().Where(l => l.Stream == "stdout"))
            {
                if (int.TryParse(line.Text, out var pid))
                {
                    try
                    {
                        using var orphan = Process.GetProcessById(pid);
                        orphan.Kill();
                    }
                    catch (Exception e) when (e is ArgumentException or InvalidOperationException)
                    {
                    }
                }
            }

            await instance.DisposeAsync();
        }
    }
}
