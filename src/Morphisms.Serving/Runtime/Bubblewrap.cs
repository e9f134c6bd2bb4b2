using System.Diagnostics;

namespace Morphisms.Serving.Runtime;

/// <summary>
/// Bubblewrap isolation for instances. The sandbox's file system is an allowlist built in an empty root: the system
/// (<see cref="SandboxSystemView"/>: programs, libraries, the needed parts of <c>/etc</c>, <c>/sys</c>) and the paths
/// the caller names, read-only, plus the paths it names writable; a private <c>/tmp</c>, a fresh <c>/proc</c> and
/// <c>/dev</c>, into which the caller may put a real TEE's guest interfaces (<see cref="SandboxMount"/>); the root
/// itself is read-only. Home directories, data directories and other instances' paths are not there at all. Private
/// PID, IPC and UTS namespaces, and the sandbox dies with the runtime. No capabilities, even when the runtime runs as
/// root (<c>--cap-drop ALL</c>; bubblewrap's <c>no_new_privs</c> keeps an exec, of a setuid program too, from giving
/// any back), so what an instance may open is decided by its uid and the files' modes alone. The network namespace is
/// shared: bubblewrap alone cannot give an instance a private network that still exposes its port to the gateway
/// (that needs a veth pair or slirp4netns), so instances can reach the host's network — a known gap, reported in the log.
/// </summary>
public sealed class Bubblewrap
{
    // Internal, not private: argument-level tests build command lines without a working bwrap.
    internal Bubblewrap(string path, string version)
    {
        Path = path;
        Version = version;
    }

    /// <summary>The bwrap executable.</summary>
    public string Path { get; }

    /// <summary>What <c>bwrap --version</c> printed.</summary>
    public string Version { get; }

    /// <summary>Finds a working bubblewrap (present on PATH and able to create its namespaces here), or null with the reason.</summary>
    public static Bubblewrap? Probe(out string reason)
    {
        var path = (Environment.GetEnvironmentVariable("PATH") ?? "/usr/bin:/bin")
            .Split(':', StringSplitOptions.RemoveEmptyEntries)
            .Select(d => System.IO.Path.Combine(d, "bwrap"))
            .FirstOrDefault(File.Exists);
        if (path is null)
        {
            reason = "bubblewrap (bwrap) is not installed";
            return null;
        }

        var (code, output) = Run(path, ["--version"]);
        if (code != 0)
        {
            reason = $"bwrap --version failed ({code})";
            return null;
        }

        // Installed is not enough: unprivileged user namespaces may be disabled, so try the real flags once.
        var (probe, error) = Run(path, [.. CommonArguments(), "--remount-ro", "/", "--", "/bin/true"]);
        if (probe != 0)
        {
            reason = $"bwrap cannot create its namespaces here: {error.Trim()}";
            return null;
        }

        reason = "";
        return new Bubblewrap(path, output.Trim());
    }

    /// <summary>
    /// The command line (bwrap first) that runs <paramref name="command"/> seeing the system view,
    /// <paramref name="readable"/> read-only and <paramref name="writable"/> read-write, each at its own path, and nothing
    /// else of the host, plus <paramref name="mounts"/> (a TEE's guest interfaces) each at its own target. Readable paths
    /// that do not exist are left out; a writable one and a mount's source must exist.
    /// </summary>
    public IReadOnlyList<string> Wrap(IReadOnlyList<string> command, IEnumerable<string> readable, IEnumerable<string> writable, IEnumerable<SandboxMount>? mounts = null)
    {
        List<string> args = [Path, .. CommonArguments()];
        foreach (var path in readable.Where(p => Directory.Exists(p) || File.Exists(p)).Distinct(StringComparer.Ordinal))
        {
            args.AddRange(["--ro-bind", path, path]);
        }

        foreach (var path in writable.Distinct(StringComparer.Ordinal))
        {
            args.AddRange(["--bind", path, path]);
        }

        // After --dev and the system view's /sys, so a device lands in the fresh /dev and configfs-tsm on top of the
        // read-only /sys.
        foreach (var mount in mounts ?? [])
        {
            var flag = mount.Kind switch
            {
                SandboxMountKind.Device => "--dev-bind",
                SandboxMountKind.ReadWrite => "--bind",
                _ => "--ro-bind",
            };
            args.AddRange([flag, mount.Source, mount.Target]);
        }

        // Last: bubblewrap creates the mount points of the paths above in the empty root, which then becomes read-only.
        args.AddRange(["--remount-ro", "/", "--"]);
        args.AddRange(command);
        return args;
    }

    // Wrap's paths come after these, so one under /tmp is bound on top of the private tmpfs rather than hidden by it.
    // --cap-drop ALL: bubblewrap run by root keeps every capability in the sandbox unless told otherwise, and a serving
    // host often runs as root (CI, containers); CAP_SYS_ADMIN, CAP_SYS_PTRACE or CAP_DAC_OVERRIDE would let an instance
    // remount its root writable, read any file it is shown and read the non-dumpable morph-init through /proc. For any
    // other caller bwrap leaves none anyway and accepts the flag (0.8 unprivileged and setuid alike: only --cap-add is
    // refused in setuid mode), so it is passed always, and Probe's trial run fails on a bwrap that does not know it.
    private static string[] CommonArguments() =>
    [
        "--die-with-parent", .. SandboxSystemView.Arguments(), "--tmpfs", "/tmp", "--proc", "/proc", "--dev", "/dev",
        "--unshare-pid", "--unshare-ipc", "--unshare-uts", "--cap-drop", "ALL",
    ];

    private static (int Code, string Output) Run(string program, IReadOnlyList<string> args)
    {
        var info = new ProcessStartInfo(program) { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        foreach (var arg in args)
        {
            info.ArgumentList.Add(arg);
        }

        try
        {
            using var process = Process.Start(info)!;
            var output = process.StandardOutput.ReadToEnd() + process.StandardError.ReadToEnd();
            if (!process.WaitForExit(5000))
            {
                process.Kill(entireProcessTree: true);
                return (-1, "timed out");
            }

            return (process.ExitCode, output);
        }
        catch (System.ComponentModel.Win32Exception e)
        {
            return (-1, e.Message);
        }
    }
}
