using System.Runtime.InteropServices;
using System.Security.Cryptography;
using System.Text;

namespace Morphisms.Attestation;

/// <summary>
/// Files only this user may read (state files, tokens, certificates, the simulated TEE's keys), replaced atomically or
/// created once. Each write goes to its own temporary file — a random name beside the target, created exclusively
/// (<c>O_CREAT|O_EXCL</c>, which neither opens another writer's file nor follows a symlink planted there) with mode 0600
/// from the start — flushed to disk, then published under the target's name, and the directory is then flushed to disk
/// too (Unix), so the new name survives a crash or power cut once the call returns. Two writers at once never share a
/// temporary file, readers see no file, the old content or the new one, never part of one, and a write leaves no
/// temporary file behind. It lives in this assembly because every other one references it.
/// </summary>
public static partial class PrivateFile
{
    /// <summary>Writes <paramref name="text"/> (UTF-8) to <paramref name="path"/>, creating its directory if needed.</summary>
    /// <exception cref="FileNotDurableException">The file was written, but its directory could not be flushed to disk (an <see cref="IOException"/>).</exception>
    /// <exception cref="IOException">The file or its directory cannot be written.</exception>
    /// <exception cref="UnauthorizedAccessException">This user may not write there.</exception>
    public static void Write(string path, string text) => Write(path, Encoding.UTF8.GetBytes(text));

    /// <inheritdoc cref="Write(string, string)"/>
    public static void Write(string path, ReadOnlySpan<byte> content) => Write(path, content, SyncDirectory);

    /// <summary>As <see cref="Write(string, ReadOnlySpan{byte})"/>, flushing the directory with <paramref name="syncDirectory"/> and writing the temporary file at <paramref name="tempPath"/> when given (tests).</summary>
    internal static void Write(string path, ReadOnlySpan<byte> content, Action<string> syncDirectory, string? tempPath = null) =>
        Publish(path, content, static (temp, full) =>
        {
            File.Move(temp, full, overwrite: true);
            return true;
        }, syncDirectory, tempPath);

    /// <summary>
    /// Creates <paramref name="path"/> holding <paramref name="content"/> unless a file is there already, which it then
    /// leaves as it is. Of several writers creating one file at once exactly one succeeds, and the others can read its
    /// file whole: the name appears only once the content is on disk.
    /// </summary>
    /// <returns>True when this call created the file; false when one was there (another writer's, left untouched).</returns>
    /// <exception cref="FileNotDurableException">The file was created, but its directory could not be flushed to disk (an <see cref="IOException"/>).</exception>
    /// <exception cref="IOException">The file or its directory cannot be written.</exception>
    /// <exception cref="UnauthorizedAccessException">This user may not write there.</exception>
    public static bool TryCreate(string path, ReadOnlySpan<byte> content) => TryCreate(path, content, SyncDirectory);

    /// <summary>As <see cref="TryCreate(string, ReadOnlySpan{byte})"/>, flushing the directory with <paramref name="syncDirectory"/> (tests).</summary>
    internal static bool TryCreate(string path, ReadOnlySpan<byte> content, Action<string> syncDirectory) => Publish(path, content, static (temp, full) =>
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
    }, syncDirectory);

    /// <summary>
    /// Writes the content to a new temporary file beside <paramref name="path"/>, publishes it there with
    /// <paramref name="publish"/> (temporary, target), then flushes the directory with <paramref name="syncDirectory"/>.
    /// </summary>
    private static bool Publish(string path, ReadOnlySpan<byte> content, Func<string, string, bool> publish, Action<string> syncDirectory, string? tempPath = null)
    {
        var full = Path.GetFullPath(path);
        var directory = Path.GetDirectoryName(full)!;
        Directory.CreateDirectory(directory);
        var temp = tempPath ?? $"{full}.{Convert.ToHexStringLower(RandomNumberGenerator.GetBytes(8))}.tmp";
        var options = new FileStreamOptions { Mode = FileMode.CreateNew, Access = FileAccess.Write, Share = FileShare.None };
        if (!OperatingSystem.IsWindows())
        {
            options.UnixCreateMode = UnixFileMode.UserRead | UnixFileMode.UserWrite;
        }

        // Outside the try: when the name exists already, it is not ours to delete.
        var stream = new FileStream(temp, options);
        bool published;
        try
        {
            using (stream)
            {
                stream.Write(content);
                stream.Flush(flushToDisk: true);
            }

            published = publish(temp, full);
        }
        finally
        {
            // Ours alone (created exclusively above), so removing it never removes another writer's file; after a
            // move it is gone already, after a link (or a refused one) this removes the temporary name.
            TryDelete(temp);
        }

        if (published)
        {
            // The content is on disk, but the name is an entry of the directory, which a crash can still lose (with a
            // `morph kms init --output` that said "written"). A failure here is reported, never passed over: the file
            // is there now, and the caller says it may not be after a crash.
            try
            {
                syncDirectory(directory);
            }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException)
            {
                throw new FileNotDurableException(full, e);
            }
        }

        return published;
    }

    /// <summary>
    /// Flushes <paramref name="directory"/> to disk (fsync(2) on it), so that names just created in it survive a crash.
    /// .NET refuses to open a directory as a file (<see cref="File.OpenHandle"/> answers access denied), hence libc.
    /// Nothing on Windows, which has no such call for a directory.
    /// </summary>
    private static void SyncDirectory(string directory)
    {
        if (OperatingSystem.IsWindows())
        {
            return;
        }

        // Read-only is all fsync needs; close-on-exec so a process started meanwhile does not inherit it (0 where the
        // value is not known: the descriptor lives only for this call).
        var fd = Open(directory, OperatingSystem.IsLinux() ? LinuxCloseOnExec : OperatingSystem.IsMacOS() ? MacCloseOnExec : 0);
        if (fd < 0)
        {
            throw new IOException($"{directory}: cannot open the directory to flush it ({Marshal.GetPInvokeErrorMessage(Marshal.GetLastPInvokeError())})");
        }

        try
        {
            if (Fsync(fd) != 0)
            {
                // A file system that cannot flush a directory says so with EINVAL (EBADF on some systems for a read-only
                // descriptor): PostgreSQL's fsync_fname passes over both too, as nothing more can be done there.
                var errno = Marshal.GetLastPInvokeError();
                if (errno is not (EInval or EBadf))
                {
                    throw new IOException($"{directory}: cannot flush the directory to disk ({Marshal.GetPInvokeErrorMessage(errno)})");
                }
            }
        }
        finally
        {
            _ = Close(fd);
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
    private const int EInval = 22; // likewise
    private const int EBadf = 9; // likewise
    private const int LinuxCloseOnExec = 0x80000; // O_CLOEXEC on x86-64 and arm64 alike
    private const int MacCloseOnExec = 0x1000000;

    [LibraryImport("libc", EntryPoint = "link", SetLastError = true, StringMarshalling = StringMarshalling.Utf8)]
    private static partial int Link(string existing, string created);

    // open(2) with O_RDONLY (0) and the given flags; no mode, as nothing is created.
    [LibraryImport("libc", EntryPoint = "open", SetLastError = true, StringMarshalling = StringMarshalling.Utf8)]
    private static partial int Open(string path, int flags);

    [LibraryImport("libc", EntryPoint = "fsync", SetLastError = true)]
    private static partial int Fsync(int fd);

    [LibraryImport("libc", EntryPoint = "close", SetLastError = true)]
    private static partial int Close(int fd);
}
