namespace Morphisms.Kms.AutoUnseal;

/// <summary>
/// An auto-unseal seal: wraps the root key with a key the KMS process cannot export (a TEE sealing key, an HSM
/// key), so a restart unseals without share holders. The wrapped root key lives in plaintext storage at
/// <c>core/root-key-auto</c>; the Shamir shares from <c>sys/init</c> keep working as recovery keys.
/// </summary>
public interface IRootKeyWrapper
{
    /// <summary>The seal type shown in <c>sys/seal-status</c> (<c>tee-simulated</c>, <c>pkcs11</c>, …).</summary>
    string Type { get; }

    /// <summary>Encrypts the root key.</summary>
    Task<byte[]> WrapAsync(ReadOnlyMemory<byte> rootKey, CancellationToken cancellationToken);

    /// <summary>Decrypts what <see cref="WrapAsync"/> produced.</summary>
    /// <exception cref="AutoUnsealException">The wrapping key is not the one that wrapped it (or is unavailable).</exception>
    Task<byte[]> UnwrapAsync(ReadOnlyMemory<byte> wrapped, CancellationToken cancellationToken);
}

/// <summary>An auto-unseal wrapper could not unwrap (wrong key, wrong measurement, device error); the message says which.</summary>
public sealed class AutoUnsealException(string message) : Exception(message);
