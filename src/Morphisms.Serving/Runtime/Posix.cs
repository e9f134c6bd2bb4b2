using System.Runtime.InteropServices;

namespace Morphisms.Serving.Runtime;

/// <summary>The POSIX calls the runtime needs: sending a signal (SIGTERM for a graceful drain), resolving a path.</summary>
internal static partial class Posix
{
    public const int SigTerm = 15;

    public const int SigKill = 9;

    /// <summary>
    /// setsid(1) (util-linux or busybox), or null when the host has none. A process that is not a process group leader (a
    /// child just forked, as .NET's) it makes the leader of a new session and process group and then execs the program in
    /// place, under the same pid.
    /// </summary>
    public static readonly string? Setsid = FindProgram("setsid", ["/usr/bin", "/bin"]);

    public static bool Signal(int pid, int signal) => Kill(pid, signal) == 0;

    /// <summary>Signals every process of the process group <paramref name="group"/> (kill(-group)); false when there is none left.</summary>
    public static bool SignalGroup(int group, int signal) => group > 1 && Kill(-group, signal) == 0;

    /// <summary>
    /// The program <paramref name="name"/> the way <see cref="System.Diagnostics.Process.Start()"/> finds it (as given when
    /// rooted, else beside this process's executable, in the current directory, then on this process's PATH), or null
    /// when it finds nothing there; <paramref name="firstIn"/> is searched before all of those.
    /// </summary>
    public static string? FindProgram(string name, IEnumerable<string>? firstIn = null)
    {
        if (name.Length == 0)
        {
            return null;
        }

        if (Path.IsPathRooted(name))
        {
            return File.Exists(name) ? name : null;
        }

        List<string> directories = [.. firstIn ?? []];
        if (Path.GetDirectoryName(Environment.ProcessPath) is { } own)
        {
            directories.Add(own);
        }

        directories.Add(Directory.GetCurrentDirectory());
        directories.AddRange((Environment.GetEnvironmentVariable("PATH") ?? "").Split(Path.PathSeparator, StringSplitOptions.RemoveEmptyEntries));
        return directories.Select(directory => Path.GetFullPath(Path.Combine(directory, name))).FirstOrDefault(IsExecutable);
    }

    private static bool IsExecutable(string path) =>
        File.Exists(path) && !OperatingSystem.IsWindows() && (File.GetUnixFileMode(path) & (UnixFileMode.UserExecute | UnixFileMode.GroupExecute | UnixFileMode.OtherExecute)) != 0;

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
