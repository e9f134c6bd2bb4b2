namespace Morphisms.Attestation.Simulated;

/// <summary>
/// One version of a file's content, told apart without reading it: device, inode, size, and the modification and
/// status-change times in nanoseconds (Linux <c>statx</c>). Every write, truncation, rename onto the path or
/// <c>touch -d</c> sets the status-change time to the current clock, and no call sets it back, so an unchanged
/// identity means unchanged content — the rule Linux IMA uses to measure a file once until it changes.
/// </summary>
/// <param name="Device">The device the inode is on (major and minor).</param>
/// <param name="Inode">The inode number.</param>
/// <param name="Size">The size in bytes.</param>
/// <param name="ModifiedNs">The modification time, nanoseconds since the epoch.</param>
/// <param name="ChangedNs">The status-change time, nanoseconds since the epoch.</param>
internal readonly record struct FileIdentity(ulong Device, ulong Inode, long Size, long ModifiedNs, long ChangedNs)
{
    /// <summary>The identity of the file <paramref name="path"/> names (symbolic links followed), or null off Linux or when it cannot be read.</summary>
    public static FileIdentity? Of(string path)
    {
        if (!LinuxStat.TryStat(path, LinuxStat.BasicStats, out var stat) || (stat.Mask & Needed) != Needed)
        {
            return null;
        }

        return new FileIdentity(
            ((ulong)stat.DevMajor << 32) | stat.DevMinor,
            stat.Inode,
            (long)stat.Size,
            (stat.MtimeSec * 1_000_000_000L) + stat.MtimeNsec,
            (stat.CtimeSec * 1_000_000_000L) + stat.CtimeNsec);
    }

    // STATX_INO | STATX_SIZE | STATX_MTIME | STATX_CTIME: a file system that cannot give these gets no identity.
    private const uint Needed = 0x100 | 0x200 | 0x40 | 0x80;
}
