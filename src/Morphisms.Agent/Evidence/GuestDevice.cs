using System.Runtime.InteropServices;
using Microsoft.Win32.SafeHandles;

namespace Morphisms.Agent.Evidence;

/// <summary>What the TEE guest devices (<c>/dev/sev-guest</c>, <c>/dev/tdx_guest</c>) share: opening one, and ioctl.</summary>
internal static partial class GuestDevice
{
    /// <summary>Opens <paramref name="device"/> read-write; a failure is an <see cref="EvidenceException"/> naming <paramref name="label"/> and the device.</summary>
    public static SafeFileHandle Open(string device, string label)
    {
        try
        {
            return File.OpenHandle(device, FileMode.Open, FileAccess.ReadWrite);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw new EvidenceException($"{label}: cannot open {device}: {e.Message}", e);
        }
    }

    /// <summary><c>ioctl(2)</c>; the errno is kept for <see cref="Marshal.GetLastPInvokeError"/>.</summary>
    [LibraryImport("libc", EntryPoint = "ioctl", SetLastError = true)]
    public static unsafe partial int Ioctl(int fd, ulong request, void* argument);
}
