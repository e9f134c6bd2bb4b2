using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;

namespace Morphisms.Serving.Gateway;

/// <summary>
/// The few Linux calls the splice relay makes: epoll, pipes, splice(2), an eventfd to wake the relay thread, a
/// non-blocking connect, and shutdown/close; and getrlimit, for the gateway's bound on connections. Constants are the
/// Linux values (the same on x86-64 and arm64, the only architectures the relay runs on; see <see cref="EventSize"/>).
/// </summary>
internal static unsafe partial class SpliceInterop
{
    public const int EpollCloexec = 0x80000; // EPOLL_CLOEXEC == O_CLOEXEC
    public const int EpollCtlAdd = 1;
    public const int EpollCtlDel = 2;
    public const int EpollCtlMod = 3;

    public const uint EpollIn = 0x001;
    public const uint EpollOut = 0x004;
    public const uint EpollErr = 0x008;
    public const uint EpollHup = 0x010;
    public const uint EpollOneShot = 1u << 30;
    public const uint EpollEdgeTriggered = 1u << 31;

    public const int ONonBlock = 0x800; // 04000
    public const int OCloexec = 0x80000; // 02000000

    public const uint SpliceMove = 1;
    public const uint SpliceNonBlock = 2;

    public const int ShutWrite = 1;

    public const int RLimitNoFile = 7;

    public const int EIntr = 4;
    public const int EAgain = 11;
    public const int EConnRefused = 111;
    public const int EInProgress = 115;

    /// <summary>
    /// True where the epoll_event layout below is known: x86-64 packs it (12 bytes, data at 4), arm64 aligns it
    /// (16 bytes, data at 8). Elsewhere the gateway uses its async pumps.
    /// </summary>
    public static bool Supported =>
        OperatingSystem.IsLinux() && RuntimeInformation.ProcessArchitecture is Architecture.X64 or Architecture.Arm64;

    /// <summary>sizeof(struct epoll_event) on this architecture.</summary>
    public static int EventSize => RuntimeInformation.ProcessArchitecture == Architecture.X64 ? 12 : 16;

    private static int DataOffset => RuntimeInformation.ProcessArchitecture == Architecture.X64 ? 4 : 8;

    public static uint EventsAt(byte* events, int index) => Unsafe.ReadUnaligned<uint>(events + (index * EventSize));

    public static ulong DataAt(byte* events, int index) => Unsafe.ReadUnaligned<ulong>(events + (index * EventSize) + DataOffset);

    /// <summary>epoll_ctl with one event, laid out for this architecture; returns 0 or -1 (errno in the last P/Invoke error).</summary>
    public static int Control(int epoll, int operation, int fd, uint events, ulong data)
    {
        var ev = stackalloc byte[16];
        Unsafe.WriteUnaligned(ev, events);
        Unsafe.WriteUnaligned(ev + DataOffset, data);
        return EpollCtl(epoll, operation, fd, ev);
    }

    /// <summary>
    /// The soft limit on this process's open descriptors (getrlimit(RLIMIT_NOFILE)), or null where it is unknown (off
    /// <see cref="Supported"/>, or a failed call) or unlimited.
    /// </summary>
    public static long? OpenFileLimit()
    {
        if (!Supported)
        {
            return null;
        }

        var limits = stackalloc ulong[2]; // struct rlimit { rlim_t rlim_cur, rlim_max; }, 64-bit on both architectures
        return GetRLimit(RLimitNoFile, limits) == 0 && limits[0] <= long.MaxValue ? (long)limits[0] : null;
    }

    /// <summary>Closes <paramref name="fd"/> once: close(2) is not retried on EINTR on Linux (the descriptor is gone either way).</summary>
    public static void CloseQuietly(int fd)
    {
        if (fd >= 0)
        {
            _ = Close(fd);
        }
    }

    [LibraryImport("libc", EntryPoint = "epoll_create1", SetLastError = true)]
    public static partial int EpollCreate1(int flags);

    [LibraryImport("libc", EntryPoint = "epoll_ctl", SetLastError = true)]
    private static partial int EpollCtl(int epoll, int operation, int fd, byte* ev);

    [LibraryImport("libc", EntryPoint = "epoll_wait", SetLastError = true)]
    public static partial int EpollWait(int epoll, byte* events, int maxEvents, int timeoutMilliseconds);

    [LibraryImport("libc", EntryPoint = "pipe2", SetLastError = true)]
    public static partial int Pipe2(int* fds, int flags);

    [LibraryImport("libc", EntryPoint = "splice", SetLastError = true)]
    public static partial nint Splice(int fdIn, long* offIn, int fdOut, long* offOut, nuint length, uint flags);

    [LibraryImport("libc", EntryPoint = "connect", SetLastError = true)]
    public static partial int Connect(int fd, byte* address, int addressLength);

    [LibraryImport("libc", EntryPoint = "shutdown", SetLastError = true)]
    public static partial int Shutdown(int fd, int how);

    [LibraryImport("libc", EntryPoint = "getrlimit", SetLastError = true)]
    private static partial int GetRLimit(int resource, ulong* limits);

    [LibraryImport("libc", EntryPoint = "close", SetLastError = true)]
    public static partial int Close(int fd);

    [LibraryImport("libc", EntryPoint = "eventfd", SetLastError = true)]
    public static partial int EventFd(uint initial, int flags);

    [LibraryImport("libc", EntryPoint = "read", SetLastError = true)]
    public static partial nint Read(int fd, void* buffer, nuint count);

    [LibraryImport("libc", EntryPoint = "write", SetLastError = true)]
    public static partial nint Write(int fd, void* buffer, nuint count);
}
