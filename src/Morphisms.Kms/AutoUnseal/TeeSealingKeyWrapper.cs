using System.Security.Cryptography;
using Morphisms.Kms.Barrier;

namespace Morphisms.Kms.AutoUnseal;

/// <summary>Auto-unseal with a TEE sealing key: AES-256-GCM over the root key, associated data = its storage path.</summary>
public sealed class TeeSealingKeyWrapper(ITeeSealingKeyProvider provider) : IRootKeyWrapper
{
    private const string Purpose = "kms-root-key";

    /// <inheritdoc />
    public string Type => provider.Simulated ? "tee-simulated" : "tee";

    /// <inheritdoc />
    public Task<byte[]> WrapAsync(ReadOnlyMemory<byte> rootKey, CancellationToken cancellationToken)
    {
        var key = provider.DeriveSealingKey(Purpose);
        try
        {
            return Task.FromResult(AesGcmEnvelope.Seal(key, 0, AutoUnsealPaths.WrappedRootKey, rootKey.Span));
        }
        finally
        {
            CryptographicOperations.ZeroMemory(key);
        }
    }

    /// <inheritdoc />
    public Task<byte[]> UnwrapAsync(ReadOnlyMemory<byte> wrapped, CancellationToken cancellationToken)
    {
        var key = provider.DeriveSealingKey(Purpose);
        try
        {
            return Task.FromResult(AesGcmEnvelope.Open(key, AutoUnsealPaths.WrappedRootKey, wrapped.Span));
        }
        catch (BarrierException)
        {
            throw new AutoUnsealException("the TEE sealing key does not unwrap the root key: the KMS measurement or platform differs from the one that wrapped it");
        }
        finally
        {
            CryptographicOperations.ZeroMemory(key);
        }
    }
}

/// <summary>Storage paths of auto-unseal.</summary>
internal static class AutoUnsealPaths
{
    /// <summary>The root key wrapped by the auto-unseal wrapper (plaintext storage, like <c>core/root-key</c>).</summary>
    public const string WrappedRootKey = "core/root-key-auto";
}
