using System.Buffers;
using System.IO.Enumeration;
using System.Runtime.ExceptionServices;
using System.Security.Cryptography;
using System.Text;

namespace Morphisms.Attestation.Simulated;

/// <summary>
/// The simulated TEE's launch measurement: a real hash of what runs — every file of the function
/// bundle (path, executable bit and content) and the launch configuration — so changing one byte of
/// the function changes the measurement, exactly as it would change MRENCLAVE or the SNP launch digest.
/// </summary>
/// <remarks>
/// Shaped like Gramine's trusted files (and the dm-verity root a confidential VM's command line carries): each file's
/// content is digested with SHA-256, and the launch measurement — SHA-384 for SNP, SHA-256 for SGX — covers the
/// list of names, executable bits, lengths and content digests, then the launch configuration. No real TEE feeds
/// megabytes of application through its launch digest; digesting content with SHA-256 (about twice SHA-384's speed
/// with the SHA extensions) and the files in parallel keeps the measurement off most of a cold start, and a
/// <see cref="SimulatedMeasurementCache"/> lets a launch skip the content of files digested before and unchanged since.
/// </remarks>
public static class SimulatedMeasurement
{
    private static readonly byte[] Domain = Encoding.ASCII.GetBytes("morphisms/sim-measurement/v2\0");

    // Large enough that the hash, not the reads, sets the pace; small enough to stay in cache.
    private const int ReadBufferSize = 128 * 1024;

    /// <summary>
    /// 48-byte measurement for SNP-format evidence (SHA-384). With <paramref name="cache"/>, a file whose content was
    /// digested before and has not changed since is not read again, and files digested now are recorded in it.
    /// </summary>
    public static byte[] ForSnp(string bundleDirectory, ReadOnlySpan<byte> launchConfig, SimulatedMeasurementCache? cache = null) =>
        Compute(HashAlgorithmName.SHA384, bundleDirectory, launchConfig, cache);

    /// <summary>32-byte MRENCLAVE for SGX-format evidence (SHA-256); <paramref name="cache"/> as for <see cref="ForSnp"/>.</summary>
    public static byte[] ForSgx(string bundleDirectory, ReadOnlySpan<byte> launchConfig, SimulatedMeasurementCache? cache = null) =>
        Compute(HashAlgorithmName.SHA256, bundleDirectory, launchConfig, cache);

    private static byte[] Compute(HashAlgorithmName algorithm, string bundleDirectory, ReadOnlySpan<byte> launchConfig, SimulatedMeasurementCache? cache)
    {
        if (!Directory.Exists(bundleDirectory))
        {
            throw new DirectoryNotFoundException($"function bundle directory not found: {bundleDirectory}");
        }

        var root = Path.GetFullPath(bundleDirectory);
        var files = BundlePaths(root, MaxDepth, MaxEntries)
            .Select(f => new BundleFile(f, Path.GetRelativePath(root, f).Replace('\\', '/')))
            .OrderBy(f => f.Relative, StringComparer.Ordinal)
            .ToArray();
        DigestContents(files, cache);

        using var hash = IncrementalHash.CreateHash(algorithm);
        hash.AppendData(Domain);
        Span<byte> length = stackalloc byte[8];
        foreach (var file in files)
        {
            var name = Encoding.UTF8.GetBytes(file.Relative);
            AppendLength(hash, length, name.Length);
            hash.AppendData(name);
            hash.AppendData([file.Executable ? (byte)1 : (byte)0]);
            AppendLength(hash, length, file.Length);
            hash.AppendData(file.ContentDigest);
        }

        // The launch configuration follows the files, separated by a marker no file entry can produce.
        hash.AppendData("\0launch-config\0"u8);
        AppendLength(hash, length, launchConfig.Length);
        hash.AppendData(launchConfig);
        return hash.GetHashAndReset();
    }

    /// <summary>How many directories deep a bundle may go: deeper than any real bundle, far below what PATH_MAX allows.</summary>
    internal const int MaxDepth = 256;

    /// <summary>How many files and directories a bundle may hold, counted as listed (through every directory link).</summary>
    internal const int MaxEntries = 1_000_000;

    /// <summary>
    /// Every file under <paramref name="root"/>, as <see cref="Directory.EnumerateFiles(string, string, SearchOption)"/>
    /// with <see cref="SearchOption.AllDirectories"/> lists them (directory links followed, file links listed), but
    /// refusing a directory that is one of its own ancestors and a tree deeper or larger than the bounds.
    /// </summary>
    /// <remarks>
    /// The bundle's links are vetted when its spec is loaded, but whoever can write to it can plant a loop
    /// (<c>a/x -&gt; ..</c>, <c>a/y -&gt; ..</c>) after that: listed naively it never ends, and the host measures under its
    /// change lock. Only ancestors count, by device and inode: two links to one directory (no loop) are listed through
    /// both, as before, so every tree without a loop measures as it did.
    /// </remarks>
    /// <exception cref="IOException">A directory leads back to one that contains it, or the tree passes a bound.</exception>
    internal static IEnumerable<string> BundlePaths(string root, int maxDepth, int maxEntries)
    {
        // Each directory entered, by full path: its identity, its parent and its depth (the root is 0).
        // The enumerator names the root without a trailing separator (and each directory below it as root/…/name).
        var top = Path.TrimEndingDirectorySeparator(root);
        var entered = new Dictionary<string, Entered>(StringComparer.Ordinal) { [top] = new Entered(top, DirectoryIdentity(top), null, 0) };
        var count = 0;
        var paths = new FileSystemEnumerable<string>(
            root,
            (ref FileSystemEntry entry) => entry.ToSpecifiedFullPath(),
            // As Directory.EnumerateFiles(…, AllDirectories) enumerates: hidden and system entries too, errors thrown.
            new EnumerationOptions { RecurseSubdirectories = true, AttributesToSkip = 0, IgnoreInaccessible = false })
        {
            ShouldIncludePredicate = (ref FileSystemEntry entry) => !entry.IsDirectory,
            ShouldRecursePredicate = (ref FileSystemEntry entry) =>
            {
                var parent = entered[entry.Directory.ToString()];
                var path = entry.ToFullPath();
                if (parent.Depth + 1 > maxDepth)
                {
                    throw new IOException($"function bundle is more than {maxDepth} directories deep at {path}");
                }

                CountEntry(path);
                var identity = DirectoryIdentity(path);
                for (var ancestor = parent; identity is not null && ancestor is not null; ancestor = ancestor.Parent)
                {
                    if (ancestor.Identity == identity)
                    {
                        var target = new FileInfo(path).LinkTarget is { } link ? $" (a symlink to {link})" : "";
                        throw new IOException(
                            $"function bundle directory {path}{target} leads back to {ancestor.Path}, which contains it: measuring would list it over and over");
                    }
                }

                entered[path] = new Entered(path, identity, parent, parent.Depth + 1);
                return true;
            },
        };

        foreach (var path in paths)
        {
            CountEntry(path);
            yield return path;
        }

        void CountEntry(string path)
        {
            if (++count > maxEntries)
            {
                throw new IOException($"function bundle holds more than {maxEntries} files and directories (counted through its directory links), at {path}");
            }
        }
    }

    private static (ulong Device, ulong Inode)? DirectoryIdentity(string path) =>
        FileIdentity.Of(path) is { } identity ? (identity.Device, identity.Inode) : null;

    private sealed record Entered(string Path, (ulong Device, ulong Inode)? Identity, Entered? Parent, int Depth);

    /// <summary>Digests every file's content, the files in parallel: they are independent, and a bundle is megabytes.</summary>
    private static void DigestContents(BundleFile[] files, SimulatedMeasurementCache? cache)
    {
        try
        {
            Parallel.ForEach(files, new ParallelOptions { MaxDegreeOfParallelism = Environment.ProcessorCount }, file => file.Digest(cache));
        }
        catch (AggregateException e)
        {
            // Callers expect the file's own error (missing, unreadable, changed), not the parallel loop's wrapper.
            ExceptionDispatchInfo.Capture(e.InnerExceptions[0]).Throw();
        }
    }

    private static void AppendLength(IncrementalHash hash, Span<byte> buffer, long value)
    {
        System.Buffers.Binary.BinaryPrimitives.WriteInt64BigEndian(buffer, value);
        hash.AppendData(buffer);
    }

    private sealed class BundleFile(string full, string relative)
    {
        public string Relative { get; } = relative;

        public bool Executable { get; private set; }

        public long Length { get; private set; }

        public byte[] ContentDigest { get; private set; } = [];

        /// <summary>Reads the executable bit, and the content digest from <paramref name="cache"/> or from the content.</summary>
        /// <exception cref="IOException">The file changed size while it was being measured.</exception>
        public void Digest(SimulatedMeasurementCache? cache)
        {
            Executable = !OperatingSystem.IsWindows() && (File.GetUnixFileMode(full) & UnixFileMode.UserExecute) != 0;
            var identity = cache is null ? null : FileIdentity.Of(full);
            if (identity is { } unchanged && cache!.TryGet(full, unchanged, out var digest))
            {
                Length = unchanged.Size;
                ContentDigest = digest;
                return;
            }

            DigestContent();

            // Recorded only when nothing changed while it was read: the digest is then the content the identity names.
            if (identity is { } before && before.Size == Length && FileIdentity.Of(full) == before)
            {
                cache!.Record(full, before, ContentDigest);
            }
        }

        /// <summary>
        /// Streams the content through SHA-256: a fresh array the size of a bundle's binary costs a cold process its
        /// page faults on top of the hash.
        /// </summary>
        private void DigestContent()
        {
            using var file = new FileStream(full, FileMode.Open, FileAccess.Read, FileShare.Read, bufferSize: 1, FileOptions.SequentialScan);
            using var sha256 = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
            var buffer = ArrayPool<byte>.Shared.Rent(ReadBufferSize);
            try
            {
                var expected = file.Length;
                long read = 0;
                int n;
                while ((n = file.Read(buffer)) > 0)
                {
                    read += n;
                    if (read > expected)
                    {
                        break;
                    }

                    sha256.AppendData(buffer, 0, n);
                }

                if (read != expected)
                {
                    // The length is hashed with the digest: a file that grew or shrank meanwhile must not yield a measurement.
                    throw new IOException($"function bundle file changed while it was being measured: {full}");
                }

                Length = expected;
                ContentDigest = sha256.GetHashAndReset();
            }
            finally
            {
                ArrayPool<byte>.Shared.Return(buffer);
            }
        }
    }
}
