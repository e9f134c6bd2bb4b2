using System.Runtime.InteropServices;

namespace Morphisms.Agent.App;

/// <summary>The libc calls .NET does not wrap: sending an arbitrary signal to a process.</summary>
internal static partial class Posix
{
    /// <summary>SIGHUP: the conventional "reload your configuration".</summary>
    public const int SigHup = 1;

    /// <summary>SIGTERM: stop gracefully.</summary>
    public const int SigTerm = 15;

    /// <summary>Sends <paramref name="signal"/> to <paramref name="pid"/>; false when the process is gone.</summary>
    public static bool Signal(int pid, int signal) => Kill(pid, signal) == 0;

    [LibraryImport("libc", EntryPoint = "kill", SetLastError = true)]
    private static partial int Kill(int pid, int signal);
}
