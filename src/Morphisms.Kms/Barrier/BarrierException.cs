namespace Morphisms.Kms.Barrier;

/// <summary>Stored ciphertext could not be decrypted: tampering, a swapped value, or a missing keyring term.</summary>
public sealed class BarrierException : Exception
{
    /// <summary>Creates the exception; the message names the key path, never any plaintext.</summary>
    public BarrierException(string message)
        : base(message)
    {
    }
}
