using System.Globalization;

namespace Morphisms.Serving.Runtime;

/// <summary>
/// Best-effort resource limits through cgroup v1 (memory and pids controllers), only where their directories are
/// writable (root, or a delegated hierarchy). The groups are made and limited before the instance starts, and the
/// instance joins them itself before it execs its program (<see cref="JoiningCommand"/>), so every process it ever
/// forks starts inside them. Joined from outside once it runs, as before, what it had forked by then stayed out: under
/// bubblewrap the spawned process is bwrap, which clones the sandbox (and the app in it) at once, so the workload
/// could escape both limits. Every outcome is reported so an operator knows whether limits hold.
/// </summary>
public sealed class CgroupLimits(string root = "/sys/fs/cgroup")
{
    // The joining wrapper: writes its own pid (which the program keeps across exec) into each group's cgroup.procs,
    // then execs the command. A group it cannot join is said on stderr (the instance's log) and left: limits are best
    // effort, as they were when the runtime joined it from outside. $1 is the number of cgroup.procs files that follow.
    private const string JoinScript =
        """
        n=$1; shift
        while [ "$n" -gt 0 ]; do
          { echo $$ > "$1"; } 2>/dev/null || echo "runtime: could not join the cgroup of $1 before the program started; no limit there" >&2
          n=$((n - 1)); shift
        done
        exec "$@"
        """;

    /// <summary>The shell that runs the joining wrapper, or null when the host has none (the instance then joins after it started).</summary>
    internal static readonly string? Shell = Posix.FindProgram("sh", ["/bin", "/usr/bin"]);

    /// <summary>
    /// Creates <c>morphisms/ID</c> groups and sets their limits, before the instance starts; returns what happened, one
    /// note per controller, and the groups to join.
    /// </summary>
    public CgroupPlan Prepare(string instanceId, long memoryBytes, int pids)
    {
        List<string> notes = [];
        List<string> join = [];
        if (memoryBytes > 0)
        {
            PrepareGroup("memory", instanceId, "memory.limit_in_bytes", memoryBytes.ToString(CultureInfo.InvariantCulture), notes, join);
        }

        if (pids > 0)
        {
            PrepareGroup("pids", instanceId, "pids.max", pids.ToString(CultureInfo.InvariantCulture), notes, join);
        }

        return new CgroupPlan(notes, join);
    }

    /// <summary>
    /// <paramref name="command"/> run by a wrapper that first moves itself into <paramref name="plan"/>'s groups and
    /// then execs it in place (same pid); <paramref name="command"/> itself when there is nothing to join. Null when
    /// the wrapper cannot be used: no shell on the host, or a program the wrapper would not find — left to
    /// <see cref="System.Diagnostics.Process.Start()"/>, so that a program that cannot start still fails the launch
    /// rather than the wrapper's exec; such an instance joins after it started (<see cref="JoinRunning"/>).
    /// </summary>
    public static IReadOnlyList<string>? JoiningCommand(CgroupPlan plan, IReadOnlyList<string> command)
    {
        if (plan.Join.Count == 0)
        {
            return command;
        }

        if (Shell is not { } shell || Posix.FindProgram(command[0]) is not { } program)
        {
            return null;
        }

        return
        [
            shell, "-c", JoinScript, "morph-cgroup-join", plan.Join.Count.ToString(CultureInfo.InvariantCulture), .. plan.Join,
            program, .. command.Skip(1),
        ];
    }

    /// <summary>
    /// Moves <paramref name="pid"/>, already running, into <paramref name="plan"/>'s groups: the fallback where it could
    /// not join them itself. What it forked before this stays outside; the notes say so.
    /// </summary>
    public static IReadOnlyList<string> JoinRunning(CgroupPlan plan, int pid)
    {
        List<string> notes = [];
        foreach (var procs in plan.Join)
        {
            var group = Path.GetDirectoryName(procs)!;
            try
            {
                File.WriteAllText(procs, pid.ToString(CultureInfo.InvariantCulture));
                notes.Add($"cgroup: joined {group} only after the program started: what it forked at once is outside the limit");
            }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException)
            {
                notes.Add($"cgroup: could not join {group} ({e.Message}); no limit there");
            }
        }

        return notes;
    }

    /// <summary>
    /// Removes the instance's groups (after its process exited, or when its launch was refused). A group that still
    /// holds processes is tried again every <see cref="RemoveRetryInterval"/> for <see cref="RemoveRetryFor"/>, then
    /// left and said in <paramref name="log"/>: bwrap exits as soon as the sandbox's init reports the app's status, while
    /// that init and the rest of its PID namespace are still on their way out.
    /// </summary>
    public void Remove(string instanceId, TimeProvider time, Action<string>? log = null)
    {
        if (!TryRemove(instanceId))
        {
            _ = RemoveLaterAsync(instanceId, time, log);
        }
    }

    /// <summary>How often a group still busy is tried again.</summary>
    internal static readonly TimeSpan RemoveRetryInterval = TimeSpan.FromMilliseconds(50);

    /// <summary>How long a group still busy is tried again before it is left in place.</summary>
    internal static readonly TimeSpan RemoveRetryFor = TimeSpan.FromSeconds(10);

    private async Task RemoveLaterAsync(string instanceId, TimeProvider time, Action<string>? log)
    {
        for (var waited = TimeSpan.Zero; waited < RemoveRetryFor; waited += RemoveRetryInterval)
        {
            await Task.Delay(RemoveRetryInterval, time).ConfigureAwait(false);
            if (TryRemove(instanceId))
            {
                return;
            }
        }

        log?.Invoke($"runtime: the cgroups of {instanceId} still hold processes {RemoveRetryFor.TotalSeconds:0}s after it exited; left in place");
    }

    // False while a group that exists still holds processes (rmdir says EBUSY); one that may not be removed counts as done.
    private bool TryRemove(string instanceId)
    {
        var done = true;
        foreach (var controller in new[] { "memory", "pids" })
        {
            try
            {
                var dir = Path.Combine(root, controller, "morphisms", instanceId);
                if (Directory.Exists(dir))
                {
                    Directory.Delete(dir); // cgroup directories are removed with rmdir, never recursively
                }
            }
            catch (IOException)
            {
                done = false;
            }
            catch (UnauthorizedAccessException)
            {
            }
        }

        return done;
    }

    private void PrepareGroup(string controller, string instanceId, string file, string value, List<string> notes, List<string> join)
    {
        var hierarchy = Path.Combine(root, controller);
        try
        {
            if (!Directory.Exists(hierarchy))
            {
                notes.Add($"cgroup {controller}: no v1 {controller} controller at {hierarchy}; no limit");
                return;
            }

            var dir = Directory.CreateDirectory(Path.Combine(hierarchy, "morphisms", instanceId)).FullName;
            File.WriteAllText(Path.Combine(dir, file), value);
            var procs = Path.Combine(dir, "cgroup.procs");
            if (!File.Exists(procs))
            {
                notes.Add($"cgroup {controller}: {dir} is not a cgroup (no cgroup.procs); no limit");
                return;
            }

            join.Add(procs);
            notes.Add($"cgroup {controller}: {file}={value}");
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            notes.Add($"cgroup {controller}: not writable here ({e.Message}); no limit");
        }
    }
}

/// <summary>What <see cref="CgroupLimits.Prepare"/> did: one note per controller, and the <c>cgroup.procs</c> files of the groups the instance is to join.</summary>
public sealed record CgroupPlan(IReadOnlyList<string> Notes, IReadOnlyList<string> Join)
{
    /// <summary>No limits configured: nothing to note or join.</summary>
    public static CgroupPlan None { get; } = new([], []);
}
