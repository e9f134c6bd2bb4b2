using System.Buffers;
using System.Security.Cryptography;
using System.Text;

namespace Morphisms.Attestation.Simulated;

/// <summary>
/// The simulated TEE's launch measurement: a real hash of what runs — every file of the function
/// bundle (path, executable bit and content) and the launch configuration — so changing one byte of
/// the function changes the measurement, exactly as it would change MRENCLAVE or the SNP launch digest.
/// </summary>
public static class SimulatedMeasurement
{
    private static readonly byte[] Domain = Encoding.ASCII.GetBytes("morphisms/sim-measurement/v1\0");

    // Large enough that the hash, not the reads, sets the pace; small enough to stay in cache.
    private const int ReadBufferSize = 128 * 1024;

    /// <summary>48-byte measurement for SNP-format evidence (SHA-384).</summary>
    public static byte[] ForSnp(string bundleDirectory, ReadOnlySpan<byte> launchConfig) =>
        Compute(HashAlgorithmName.SHA384, bundleDirectory, launchConfig);

    /// <summary>32-byte MRENCLAVE for SGX-format evidence (SHA-256).</summary>
    public static byte[] ForSgx(string bundleDirectory, ReadOnlySpan<byte> launchConfig) =>
        Compute(HashAlgorithmName.SHA256, bundleDirectory, launchConfig);

    private static byte[] Compute(HashAlgorithmName algorithm, string bundleDirectory, ReadOnlySpan<byte> launchConfig)
    {
        if (!Directory.Exists(bundleDirectory))
        {
            throw new DirectoryNotFoundException($"function bundle directory not found: {bundleDirectory}");
        }

        using var hash = IncrementalHash.CreateHash(algorithm);
        var buffer = ArrayPool<byte>.Shared.Rent(ReadBufferSize);
        try
        {
            AppendBundle(hash, bundleDirectory, launchConfig, buffer);
            return hash.GetHashAndReset();
        }
        finally
        {
            ArrayPool<byte>.Shared.Return(buffer);
        }
    }

    private static void AppendBundle(IncrementalHash hash, string bundleDirectory, ReadOnlySpan<byte> launchConfig, byte[] buffer)
    {
        hash.AppendData(Domain);
        var root = Path.GetFullPath(bundleDirectory);
        var files = Directory.EnumerateFiles(root, "*", SearchOption.AllDirectories)
            .Select(f => (Full: f, Relative: Path.GetRelativePath(root, f).Replace('\\', '/')))
            .OrderBy(f => f.Relative, StringComparer.Ordinal);
        Span<byte> length = stackalloc byte[8];
        foreach (var (full, relative) in files)
        {
            var name = Encoding.UTF8.GetBytes(relative);
            AppendLength(hash, length, name.Length);
            hash.AppendData(name);
            var executable = !OperatingSystem.IsWindows() && (File.GetUnixFileMode(full) & UnixFileMode.UserExecute) != 0;
            hash.AppendData([executable ? (byte)1 : (byte)0]);
            AppendContent(hash, length, full, buffer);
        }

        // The launch configuration follows the files, separated by a marker no file entry can produce.
        hash.AppendData("\0launch-config\0"u8);
        AppendLength(hash, length, launchConfig.Length);
        hash.AppendData(launchConfig);
    }

    /// <summary>
    /// Appends a file's length, then its content, streamed: a bundle is megabytes, and a fresh array of that size
    /// costs a cold process its page faults on top of the hash.
    /// </summary>
    /// <exception cref="IOException">The file changed size while it was being measured.</exception>
    private static void AppendContent(IncrementalHash hash, Span<byte> length, string path, byte[] buffer)
    {
        using var file = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.Read, bufferSize: 1, FileOptions.SequentialScan);
        var expected = file.Length;
        AppendLength(hash, length, expected);
        long read = 0;
        int n;
        while ((n = file.Read(buffer)) > 0)
        {
            read += n;
            if (read > expected)
            {
                break;
            }

            hash.AppendData(buffer, 0, n);
        }

        if (read != expected)
        {
            // The length prefix is already hashed: a file that grew or shrank meanwhile must not yield a measurement.
            throw new IOException($"function bundle file changed while it was being measured: {path}");
        }
    }

    private static void AppendLength(IncrementalHash hash, Span<byte> buffer, long value)
    {
        System.Buffers.Binary.BinaryPrimitives.WriteInt64BigEndian(buffer, value);
        hash.AppendData(buffer);
    }
}
