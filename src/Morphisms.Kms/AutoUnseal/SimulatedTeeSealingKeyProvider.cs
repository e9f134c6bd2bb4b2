using System.Security.Cryptography;
using System.Text;

namespace Morphisms.Kms.AutoUnseal;

/// <summary>
/// SIMULATED sealing key: HKDF-SHA256(installation secret, salt = KMS measurement, info = purpose). The secret is a
/// random file next to the simulated TEE (0600), standing in for the chip's fused secret; anyone who can read it
/// can derive the key, so this protects nothing beyond development. A different measurement derives a different
/// key, which is the property tests rely on.
/// </summary>
public sealed class SimulatedTeeSealingKeyProvider : ITeeSealingKeyProvider
{
    /// <summary>The secret's file name inside the installation directory.</summary>
    public const string SecretFileName = "simulated-sealing-secret";

    private readonly byte[] _secret;
    private readonly byte[] _measurement;

    private SimulatedTeeSealingKeyProvider(byte[] secret, byte[] measurement)
    {
        _secret = secret;
        _measurement = measurement;
    }

    /// <inheritdoc />
    public bool Simulated => true;

    /// <summary>Loads (creating if needed) the installation secret in <paramref name="directory"/>, bound to <paramref name="measurement"/>.</summary>
    /// <exception cref="ArgumentException">The measurement is empty.</exception>
    /// <exception cref="InvalidDataException">The secret file is not 32 bytes.</exception>
    public static SimulatedTeeSealingKeyProvider LoadOrCreate(string directory, ReadOnlySpan<byte> measurement)
    {
        if (measurement.IsEmpty)
        {
            throw new ArgumentException("the KMS measurement must not be empty", nameof(measurement));
        }

        Directory.CreateDirectory(directory);
        var path = Path.Combine(directory, SecretFileName);
        if (!File.Exists(path))
        {
            var options = new FileStreamOptions { Mode = FileMode.CreateNew, Access = FileAccess.Write };
            if (!OperatingSystem.IsWindows())
            {
                options.UnixCreateMode = UnixFileMode.UserRead | UnixFileMode.UserWrite;
            }

            try
            {
                using var file = new FileStream(path, options);
                file.Write(RandomNumberGenerator.GetBytes(32));
            }
            catch (IOException) when (File.Exists(path))
            {
                // Another process created it first; use theirs.
            }
        }

        var secret = File.ReadAllBytes(path);
        return secret.Length == 32
            ? new SimulatedTeeSealingKeyProvider(secret, measurement.ToArray())
            : throw new InvalidDataException($"{path} must hold exactly 32 bytes");
    }

    /// <inheritdoc />
    public byte[] DeriveSealingKey(string purpose) =>
        HKDF.DeriveKey(HashAlgorithmName.SHA256, _secret, 32, _measurement, Encoding.UTF8.GetBytes("morphisms/simulated-tee/sealing-key/v1|" + purpose));
}
