using System.Runtime.InteropServices;
using System.Security.Cryptography;
using System.Text;

namespace Morphisms.Attestation;

/// <summary>
/// Files only this user may read (state files, tokens, certificates, the simulated TEE's keys), replaced atomically or
/// created once. Each write goes to its own temporary file — a random name beside the target, created exclusively
/// (<c>O_CREAT|O_EXCL</c>, which neither opens another writer's file nor follows a symlink planted there) with mode 0600
/// from the start — flushed to disk, then published under the target's name. Two writers at once never share a
/// temporary file, readers see no file, the old content or the new one, never part of one, and a write leaves no
/// temporary file behind. It lives in this assembly because every other one references it.
/// </summary>
public static partial class PrivateFile
{
    /// <summary>Writes <paramref name="text"/> (UTF-8) to <paramref name="path"/>, creating its directory if needed.</summary>
    /// <exception cref="IOException">The file or its directory cannot be written.</exception>
    /// <exception cref="UnauthorizedAccessException">This user may not write there.</exception>
    public static void Write(string path, string text) => Write(path, Encoding.UTF8.GetBytes(text));

    /// <inheritdoc cref="Write(string, string)"/>
    public static void Write(string path, ReadOnlySpan<byte> content) =>
        Publish(path, content, static (temp, full) =>
        {
            File.Move(temp, full, overwrite: true);
            return true;
        });

    /// <summary>
    /// Creates <paramref name="path"/> holding <paramref name="content"/> unless a file is there already, which it then
    /// leaves as it is. Of several writers creating one file at once exactly one succeeds, and the others can read its
    /// file whole: the name appears only once the content is on disk.
    /// </summary>
    /// <returns>True when this call created the file; false when one was there (another writer's, left untouched).</returns>
    /// <exception cref="IOException">The file or its directory cannot be written.</exception>
    /// <exception cref="UnauthorizedAccessException">This user may not write there.</exception>
    public static bool TryCreate(string path, ReadOnlySpan<byte> content) => Publish(path, content, static (temp, full) =>
    {
        // link(2) publishes atomically and fails when the name exists. .NET's File.Move without overwrite checks, then
        // renames, so two creators at that instant would both succeed, the second replacing the first's file.
        if (!OperatingSystem.IsWindows())
        {
            if (Link(temp, full) == 0)
            {
                return true;
            }

            if (Marshal.GetLastPInvokeError() == EExist)
            {
                return false;
            }

            // A file system without hard links (FAT, some FUSE mounts): the move below, racy only against another
            // creator at that same instant.
        }

        try
        {
            // On Windows MoveFileEx without MOVEFILE_REPLACE_EXISTING, which fails atomically when the name exists.
            File.Move(temp, full, overwrite: false);
            return true;
        }
        catch (IOException) when (File.Exists(full))
        {
            return false;
        }
    });

    /// <summary>Writes the content to a new temporary file beside <paramref name="path"/>, then publishes it there with <paramref name="publish"/> (temporary, target).</summary>
    private static bool Publish(string path, ReadOnlySpan<byte> content, Func<string, string, bool> publish)
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

            return publish(temp, full);
        }
        finally
        {
            // Ours alone (created exclusively above), so removing it never removes another writer's file; after a
            // move it is gone already, after a link (or a refused one) this removes the temporary name.
            TryDelete(temp);
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
            // The write's own error, or its result, is the one to report.
        }
    }

    private const int EExist = 17; // the same on Linux, macOS and the BSDs

    [LibraryImport("libc", EntryPoint = "link", SetLastError = true, StringMarshalling = StringMarshalling.Utf8)]
    private static partial int Link(string existing, string created);
}
