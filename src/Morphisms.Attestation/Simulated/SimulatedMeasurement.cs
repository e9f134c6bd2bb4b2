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
            var content = File.ReadAllBytes(full);
            AppendLength(hash, length, content.Length);
            hash.AppendData(content);
        }

        // The launch configuration follows the files, separated by a marker no file entry can produce.
        hash.AppendData("\0launch-config\0"u8);
        AppendLength(hash, length, launchConfig.Length);
        hash.AppendData(launchConfig);
        return hash.GetHashAndReset();
    }

    private static void AppendLength(IncrementalHash hash, Span<byte> buffer, long value)
    {
        System.Buffers.Binary.BinaryPrimitives.WriteInt64BigEndian(buffer, value);
        hash.AppendData(buffer);
    }
}
