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
    /// <exception cref="IOException">The file cannot be read.</exception>
    /// <exception cref="UnauthorizedAccessException">The file cannot be opened.</exception>
    public static bool TryReadAllBytes(string path, int limit, out byte[] bytes)
    {
        using var stream = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.Read, bufferSize: 1, FileOptions.SequentialScan);
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
}
