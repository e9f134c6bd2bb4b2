using System.Globalization;

namespace Morphisms.Serving.Runtime;

/// <summary>
/// Best-effort resource limits through cgroup v1 (memory and pids controllers), only where their directories are
/// writable (root, or a delegated hierarchy). A process joins after it started; its later children inherit the group.
/// Every outcome is reported so an operator knows whether limits hold.
/// </summary>
public sealed class CgroupLimits(string root = "/sys/fs/cgroup")
{
    /// <summary>Creates <c>morphisms/ID</c> groups, sets the limits and moves <paramref name="pid"/> in; returns what happened, one note per controller.</summary>
    public IReadOnlyList<string> Apply(string instanceId, int pid, long memoryBytes, int pids)
    {
        List<string> notes = [];
        if (memoryBytes > 0)
        {
            notes.Add(Join("memory", instanceId, pid, "memory.limit_in_bytes", memoryBytes.ToString(CultureInfo.InvariantCulture)));
        }

        if (pids > 0)
        {
            notes.Add(Join("pids", instanceId, pid, "pids.max", pids.ToString(CultureInfo.InvariantCulture)));
        }

        return notes;
    }

    /// <summary>Removes the instance's groups (after its processes exited).</summary>
    public void Remove(string instanceId)
    {
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
            catch (Exception e) when (e is IOException or UnauthorizedAccessException)
            {
            }
        }
    }

    private string Join(string controller, string instanceId, int pid, string file, string value)
    {
        var hierarchy = Path.Combine(root, controller);
        try
        {
            if (!Directory.Exists(hierarchy))
            {
                return $"cgroup {controller}: no v1 {controller} controller at {hierarchy}; no limit";
            }

            var dir = Directory.CreateDirectory(Path.Combine(hierarchy, "morphisms", instanceId)).FullName;
            File.WriteAllText(Path.Combine(dir, file), value);
            File.WriteAllText(Path.Combine(dir, "cgroup.procs"), pid.ToString(CultureInfo.InvariantCulture));
            return $"cgroup {controller}: {file}={value}";
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            return $"cgroup {controller}: not writable here ({e.Message}); no limit";
        }
    }
}
