using System.Security.Cryptography;
using System.Text;

namespace Morphisms.Serving.Hosting;

/// <summary>
/// Files only this user may read (state files, tokens, certificates), replaced atomically. Each write goes to its own
/// temporary file — a random name beside the target, created exclusively (<c>O_CREAT|O_EXCL</c>, which neither opens
/// another writer's file nor follows a symlink planted there) with mode 0600 from the start — flushed to disk, then
/// renamed over the target. Two writers at once never share a temporary file, readers see the old content or the new
/// one, and a failed write leaves no temporary file behind.
/// </summary>
public static class PrivateFile
{
    /// <summary>Writes <paramref name="text"/> (UTF-8) to <paramref name="path"/>, creating its directory if needed.</summary>
    /// <exception cref="IOException">The file or its directory cannot be written.</exception>
    /// <exception cref="UnauthorizedAccessException">This user may not write there.</exception>
    public static void Write(string path, string text) => Write(path, Encoding.UTF8.GetBytes(text));

    /// <inheritdoc cref="Write(string, string)"/>
    public static void Write(string path, ReadOnlySpan<byte> content)
    {
        var full = Path.GetFullPath(path);
        Directory.CreateDirectory(Path.GetDirectoryName(full)!);
        var temp = $"{full}.{Convert.ToHexStringLower(RandomNumberGenerator.GetBytes(8))}.tmp";
        var options = new FileStreamOptions { Mode = FileMode.CreateNew, Access = FileAccess.Write, Share = FileShare.None };
        if (!OperatingSystem.IsWindows())
        {
            options.UnixCreateMode = UnixFileMode.UserRead | UnixFileMode.UserWrite;
        }

        // Outside the try: when the name exists already, it is not ours to delete.
        var stream = new FileStream(temp, options);
        try
        {
            using (stream)
            {
                stream.Write(content);
                stream.Flush(flushToDisk: true);
            }

            File.Move(temp, full, overwrite: true);
        }
        catch
        {
            // Ours alone (created exclusively above), so removing it never removes another writer's file.
            TryDelete(temp);
            throw;
        }
    }

    private static void TryDelete(string path)
    {
        try
        {
            File.Delete(path);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            // The write's own error is the one to report.
        }
    }
}
