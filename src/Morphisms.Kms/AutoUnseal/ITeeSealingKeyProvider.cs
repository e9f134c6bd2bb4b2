namespace Morphisms.Kms.AutoUnseal;

/// <summary>
/// The TEE's sealing-key seam: a key bound to the platform and to the measurement of the code asking for it, as
/// SEV-SNP's MSG_KEY_REQ (with the measurement mixed in) or SGX's EGETKEY(MRENCLAVE) give. Another measurement
/// gets another key, so an altered KMS cannot unwrap the root key.
/// </summary>
public interface ITeeSealingKeyProvider
{
    /// <summary>True when the key does not come from TEE hardware.</summary>
    bool Simulated { get; }

    /// <summary>A 32-byte key for <paramref name="purpose"/>, bound to the platform and the caller's measurement.</summary>
    byte[] DeriveSealingKey(string purpose);
}
