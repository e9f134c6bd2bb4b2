using System.Runtime.InteropServices;

namespace Morphisms.Attestation;

/// <summary>Linux <c>statx(2)</c> on a path, symbolic links followed: what the file is, without opening it.</summary>
internal static partial class LinuxStat
{
    /// <summary>STATX_TYPE: the file type bits of <see cref="StatxBuffer.Mode"/>.</summary>
    public const uint Type = 0x1;

    /// <summary>STATX_BASIC_STATS.</summary>
    public const uint BasicStats = 0x7ff;

    /// <summary>
    /// The fields of <paramref name="path"/> that <paramref name="mask"/> asks for; false off Linux or when the call
    /// fails. Which fields the file system could give is in <see cref="StatxBuffer.Mask"/>.
    /// </summary>
    public static bool TryStat(string path, uint mask, out StatxBuffer stat)
    {
        const int atFdCwd = -100;
        if (!OperatingSystem.IsLinux())
        {
            stat = default;
            return false;
        }

        return Statx(atFdCwd, path, 0, mask, out stat) == 0;
    }

    [LibraryImport("libc", EntryPoint = "statx", SetLastError = true, StringMarshalling = StringMarshalling.Utf8)]
    private static partial int Statx(int dirfd, string path, int flags, uint mask, out StatxBuffer buffer);
}

/// <summary><c>struct statx</c> from <c>&lt;linux/stat.h&gt;</c>: the same layout on every architecture, 256 bytes.</summary>
[StructLayout(LayoutKind.Explicit, Size = 256)]
internal struct StatxBuffer
{
    /// <summary>stx_mask: the fields filled in.</summary>
    [FieldOffset(0)]
    public uint Mask;

    /// <summary>stx_mode: file type and permissions.</summary>
    [FieldOffset(28)]
    public ushort Mode;

    /// <summary>stx_ino.</summary>
    [FieldOffset(32)]
    public ulong Inode;

    /// <summary>stx_size.</summary>
    [FieldOffset(40)]
    public ulong Size;

    /// <summary>stx_ctime.tv_sec.</summary>
    [FieldOffset(96)]
    public long CtimeSec;

    /// <summary>stx_ctime.tv_nsec.</summary>
    [FieldOffset(104)]
    public uint CtimeNsec;

    /// <summary>stx_mtime.tv_sec.</summary>
    [FieldOffset(112)]
    public long MtimeSec;

    /// <summary>stx_mtime.tv_nsec.</summary>
    [FieldOffset(120)]
    public uint MtimeNsec;

    /// <summary>stx_dev_major.</summary>
    [FieldOffset(136)]
    public uint DevMajor;

    /// <summary>stx_dev_minor.</summary>
    [FieldOffset(140)]
    public uint DevMinor;
}
