using System.Globalization;
using System.Runtime.InteropServices;

namespace Morphisms.Bench.Load;

/// <summary>
/// Confines this whole process to a set of CPUs (Linux <c>sched_setaffinity</c>), so that the KMS scenario can give the
/// KMS and its load generator cores of their own: on one machine that is the nearest thing to the production layout,
/// where every agent runs in its own TEE on other hosts and takes no CPU from the KMS.
/// </summary>
/// <remarks>
/// Affinity is per thread on Linux, and a thread inherits its creator's: every thread that exists is moved (the list is
/// read again until a pass finds no new one), and any thread started after that is born confined. The runtime sized
/// itself at start-up (<see cref="Environment.ProcessorCount"/>, the thread pool's minimum) for all the machine's CPUs;
/// a child started from a confined process is sized for its parent's set, so the KMS scenario tells the kms-client's
/// runtime its own count (<c>DOTNET_PROCESSOR_COUNT</c>) before it moves.
/// </remarks>
internal static class CpuAffinity
{
    private const int MaxCpus = 64;

    /// <summary>Parses a CPU list as <c>taskset -c</c> writes it (<c>0</c>, <c>1-3</c>, <c>0,2</c>).</summary>
    /// <exception cref="ArgumentException">Not such a list, or a CPU beyond the 64 this supports.</exception>
    public static IReadOnlyList<int> ParseList(string list)
    {
        ArgumentNullException.ThrowIfNull(list);
        var cpus = new SortedSet<int>();
        foreach (var part in list.Split(',', StringSplitOptions.TrimEntries))
        {
            var range = part.Split('-');
            if (range.Length is < 1 or > 2 || !range.All(r => int.TryParse(r, NumberStyles.None, CultureInfo.InvariantCulture, out _)))
            {
                throw new ArgumentException($"'{list}' is not a CPU list (e.g. 0, 1-3 or 0,2)");
            }

            var first = int.Parse(range[0], CultureInfo.InvariantCulture);
            var last = int.Parse(range[^1], CultureInfo.InvariantCulture);
            if (last < first || last >= MaxCpus)
            {
                throw new ArgumentException($"'{list}': CPUs run from 0 to {MaxCpus - 1}, each range low-high");
            }

            for (var cpu = first; cpu <= last; cpu++)
            {
                cpus.Add(cpu);
            }
        }

        return [.. cpus];
    }

    /// <summary>Moves every thread of this process onto <paramref name="cpus"/>; returns how many CPUs that is.</summary>
    /// <exception cref="InvalidOperationException">The kernel refused (a CPU outside this container's set, say).</exception>
    public static int ConfineProcess(IReadOnlyList<int> cpus)
    {
        ulong mask = 0;
        foreach (var cpu in cpus)
        {
            mask |= 1UL << cpu;
        }

        var moved = new HashSet<int>();
        while (true)
        {
            var pending = Directory.EnumerateDirectories("/proc/self/task")
                .Select(d => int.Parse(Path.GetFileName(d), CultureInfo.InvariantCulture))
                .Where(tid => !moved.Contains(tid))
                .ToList();
            if (pending.Count == 0)
            {
                // The kernel drops CPUs outside the container's set without a word: read back what it applied.
                ulong applied = 0;
                if (sched_getaffinity(0, sizeof(ulong), ref applied) != 0 || applied != mask)
                {
                    throw new InvalidOperationException($"CPUs {string.Join(',', cpus)} were not all applied (the kernel kept mask 0x{applied:x}): is each in this machine's or container's set?");
                }

                return cpus.Count;
            }

            foreach (var tid in pending)
            {
                // A thread that ended since the listing is not an error: there is nothing left to move.
                if (sched_setaffinity(tid, sizeof(ulong), ref mask) != 0 && Marshal.GetLastPInvokeError() != Esrch)
                {
                    throw new InvalidOperationException($"sched_setaffinity({tid}, CPUs {string.Join(',', cpus)}) failed: errno {Marshal.GetLastPInvokeError()}");
                }

                moved.Add(tid);
            }
        }
    }

    private const int Esrch = 3;

    [DllImport("libc", SetLastError = true)]
    private static extern int sched_setaffinity(int pid, nint cpusetsize, ref ulong mask);

    [DllImport("libc", SetLastError = true)]
    private static extern int sched_getaffinity(int pid, nint cpusetsize, ref ulong mask);
}
