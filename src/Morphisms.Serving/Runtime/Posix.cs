using System.Runtime.InteropServices;

namespace Morphisms.Serving.Runtime;

/// <summary>The POSIX calls the runtime needs: sending a signal (SIGTERM for a graceful drain), resolving a path.</summary>
internal static partial class Posix
{
    public const int SigTerm = 15;

    public static bool Signal(int pid, int signal) => Kill(pid, signal) == 0;

    /// <summary>The short command name of <paramref name="pid"/> (/proc/PID/comm), or null when it cannot be read.</summary>
    public static string? CommandName(int pid)
    {
        try
        {
            return File.ReadAllText($"/proc/{pid}/comm").Trim();
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            return null; // gone, or not ours to read
        }
    }

    /// <summary>The live descendants of <paramref name="pid"/> (from /proc), nearest first, so a sandbox's inner processes can be signalled.</summary>
    public static IReadOnlyList<int> Descendants(int pid)
    {
        var parents = new Dictionary<int, int>();
        foreach (var dir in Directory.EnumerateDirectories("/proc"))
        {
            if (!int.TryParse(Path.GetFileName(dir), out var child))
            {
                continue;
            }

            try
            {
                // /proc/PID/stat: "pid (comm) state ppid ..."; comm may contain spaces, so parse after the last ')'.
                var stat = File.ReadAllText(Path.Combine(dir, "stat"));
                var fields = stat[(stat.LastIndexOf(')') + 2)..].Split(' ');
                parents[child] = int.Parse(fields[1], System.Globalization.CultureInfo.InvariantCulture);
            }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException or FormatException or IndexOutOfRangeException)
            {
            }
        }

        List<int> result = [];
        var frontier = new Queue<int>([pid]);
        while (frontier.TryDequeue(out var parent))
        {
            foreach (var (child, ppid) in parents)
            {
                if (ppid == parent)
                {
                    result.Add(child);
                    frontier.Enqueue(child);
                }
            }
        }

        return result;
    }

    /// <summary>
    /// <paramref name="path"/> with every symlink and <c>..</c> resolved, as the kernel and the .NET host see it
    /// (realpath(3)), or null when it does not exist.
    /// </summary>
    public static string? RealPath(string path)
    {
        var resolved = RealPath(path, 0);
        if (resolved == 0)
        {
            return null;
        }

        try
        {
            return Marshal.PtrToStringUTF8(resolved);
        }
        finally
        {
            // realpath mallocs its answer; FreeHGlobal is free(3) on Unix.
            Marshal.FreeHGlobal(resolved);
        }
    }

    [LibraryImport("libc", EntryPoint = "realpath", StringMarshalling = StringMarshalling.Utf8)]
    private static partial nint RealPath(string path, nint resolved);

    [DllImport("libc", EntryPoint = "kill", SetLastError = true)]
    private static extern int Kill(int pid, int signal);
}
