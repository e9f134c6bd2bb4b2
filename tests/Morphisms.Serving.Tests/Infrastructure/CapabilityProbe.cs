using System.Runtime.InteropServices;

namespace Morphisms.Serving.Tests;

/// <summary>
/// <see cref="ServingTestApp"/>'s <c>caps-probe FILE</c>, run as an instance: prints its capability sets and
/// no_new_privs, then what the kernel answers to the two things a missing capability forbids, as errno: opening
/// <c>FILE</c>, which its mode closes to everyone (<c>CAP_DAC_OVERRIDE</c>), and making the sandbox's read-only root
/// writable (<c>CAP_SYS_ADMIN</c>). System calls, not <c>cat</c> or <c>mount</c>, whose refusal could as well be a
/// missing program or file, or (mount, not run as root) its own check before it asks the kernel.
/// </summary>
internal static partial class CapabilityProbe
{
    private const int ORdOnly = 0;
    private const nuint MsRemount = 32;
    private const nuint MsBind = 4096;

    /// <summary>Prints the probe's lines; 0 unless <paramref name="locked"/> does not exist.</summary>
    public static int Run(string locked)
    {
        foreach (var line in File.ReadLines("/proc/self/status"))
        {
            if (line.Split(':')[0] is "CapInh" or "CapPrm" or "CapEff" or "CapAmb" or "NoNewPrivs")
            {
                Console.WriteLine(line);
            }
        }

        // stat needs no permission on the file itself: shown to be there, a refused open is its mode.
        if (!File.Exists(locked))
        {
            Console.WriteLine($"locked: {locked} does not exist");
            return 1;
        }

        var fd = Open(locked, ORdOnly);
        Console.WriteLine($"locked: open {(fd >= 0 ? "succeeded" : Errno(Marshal.GetLastPInvokeError()))}");
        if (fd >= 0)
        {
            Close(fd);
        }

        // bubblewrap's --remount-ro is a bind remount of /; the same without MS_RDONLY is what would undo it.
        var remounted = Mount(null, "/", null, MsRemount | MsBind, 0);
        Console.WriteLine($"remount rw /: {(remounted == 0 ? "succeeded" : Errno(Marshal.GetLastPInvokeError()))}");
        return 0;
    }

    private static string Errno(int errno) => $"{errno switch { 1 => "EPERM", 2 => "ENOENT", 13 => "EACCES", _ => $"errno {errno}" }} ({Marshal.GetPInvokeErrorMessage(errno)})";

    [LibraryImport("libc", EntryPoint = "open", SetLastError = true, StringMarshalling = StringMarshalling.Utf8)]
    private static partial int Open(string path, int flags);

    [LibraryImport("libc", EntryPoint = "close")]
    private static partial int Close(int fd);

    [LibraryImport("libc", EntryPoint = "mount", SetLastError = true, StringMarshalling = StringMarshalling.Utf8)]
    private static partial int Mount(string? source, string target, string? type, nuint flags, nint data);
}
