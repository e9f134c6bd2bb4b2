using System.Runtime.InteropServices;

namespace Morphisms.Agent.App;

/// <summary>The libc calls .NET does not wrap: sending an arbitrary signal to a process, and prctl.</summary>
internal static partial class Posix
{
    /// <summary>SIGHUP: the conventional "reload your configuration".</summary>
    public const int SigHup = 1;

    /// <summary>SIGTERM: stop gracefully.</summary>
    public const int SigTerm = 15;

    /// <summary>prctl option: whether this process may be dumped, and so read or traced by others of its uid.</summary>
    public const int PrGetDumpable = 3;

    /// <summary>prctl option: set or clear that flag.</summary>
    public const int PrSetDumpable = 4;

    /// <summary>Sends <paramref name="signal"/> to <paramref name="pid"/>; false when the process is gone.</summary>
    public static bool Signal(int pid, int signal) => Kill(pid, signal) == 0;

    /// <summary>prctl with one argument (the others zero, as the kernel requires of the options used here); -1 and errno on failure.</summary>
    public static int Prctl(int option, ulong argument) => PrctlNative(option, (nuint)argument, 0, 0, 0);

    [LibraryImport("libc", EntryPoint = "kill", SetLastError = true)]
    private static partial int Kill(int pid, int signal);

    // prctl is variadic in libc; on x86-64 and arm64 Linux integer arguments travel the same way either way.
    [LibraryImport("libc", EntryPoint = "prctl", SetLastError = true)]
    private static partial int PrctlNative(int option, nuint arg2, nuint arg3, nuint arg4, nuint arg5);
}
