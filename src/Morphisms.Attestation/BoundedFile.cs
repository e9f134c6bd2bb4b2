namespace Morphisms.Attestation;

/// <summary>
/// Reads a file a user or an operator names, up to a cap. Its reported length is not trusted: <c>/dev/zero</c>, a pipe
/// or a FIFO says 0 and never ends, and <see cref="File.ReadAllBytes(string)"/> would read it until memory ran out.
/// At most one byte over the cap is read, from any kind of file.
/// </summary>
public static class BoundedFile
{
    /// <summary>Reads the whole file at <paramref name="path"/> when it holds at most <paramref name="limit"/> bytes.</summary>
    /// <returns>False (and <paramref name="bytes"/> empty) when the file holds more than <paramref name="limit"/> bytes.</returns>
    /// <exception cref="IOException">The file cannot be read, or <paramref name="path"/> is a directory.</exception>
    /// <exception cref="UnauthorizedAccessException">The file cannot be opened.</exception>
    public static bool TryReadAllBytes(string path, int limit, out byte[] bytes)
    {
        using var stream = OpenRead(path);
        var buffer = new byte[Math.Min(limit + 1, 64 * 1024)];
        using var content = new MemoryStream();
        int read;
        while ((read = stream.Read(buffer, 0, (int)Math.Min(buffer.Length, limit + 1 - content.Length))) > 0)
        {
            content.Write(buffer, 0, read);
            if (content.Length > limit)
            {
                bytes = [];
                return false;
            }
        }

        bytes = content.ToArray();
        return true;
    }

    /// <summary>Opens the file at <paramref name="path"/> for reading, with no buffer of its own (callers read in blocks).</summary>
    /// <exception cref="IOException">The file cannot be opened, or <paramref name="path"/> is a directory.</exception>
    /// <exception cref="UnauthorizedAccessException">The file cannot be opened by this user.</exception>
    public static FileStream OpenRead(string path)
    {
        try
        {
            return new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.Read, bufferSize: 1, FileOptions.SequentialScan);
        }
        catch (UnauthorizedAccessException) when (Directory.Exists(path))
        {
            // Opening a directory is "access denied" to .NET, which sends the user to check permissions, not the path.
            throw new IOException(NotAFile(path));
        }
    }

    /// <summary>
    /// Whether <paramref name="path"/> (symbolic links followed) is a regular file, asked without opening it: the open
    /// itself of a FIFO waits until something writes to it, and a device such as <c>/dev/zero</c> never ends. Null where
    /// the type cannot be had (off Linux, a path that does not resolve): opening it then says why.
    /// </summary>
    public static bool? IsRegularFile(string path)
    {
        const ushort typeMask = 0xF000, regular = 0x8000;
        return LinuxStat.TryStat(path, LinuxStat.Type, out var stat) && (stat.Mask & LinuxStat.Type) != 0
            ? (stat.Mode & typeMask) == regular
            : null;
    }

    /// <summary>The message for a directory named where a file is expected: "PATH is a directory, not a file".</summary>
    public static string NotAFile(string path) => $"{path} is a directory, not a file";
}
