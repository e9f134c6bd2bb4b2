namespace Morphisms.Kms.Seal;

/// <summary>
/// How the 32-byte key that opens the root key is handed out, as Vault does it: with one share the share is the key
/// itself (Shamir needs at least two), otherwise <see cref="Shamir"/> shares of one more byte (the x coordinate). Init,
/// unseal, rekey and rekey verification all follow this one layout.
/// </summary>
internal static class UnsealShares
{
    /// <summary>The length of the key the shares reconstruct.</summary>
    public const int KeyLength = 32;

    /// <summary>The length of each share when <paramref name="shares"/> were handed out.</summary>
    public static int ShareLength(int shares) => shares == 1 ? KeyLength : KeyLength + 1;

    /// <summary>Splits <paramref name="key"/> into <paramref name="shares"/> shares, any <paramref name="threshold"/> of which recover it.</summary>
    public static byte[][] Split(ReadOnlySpan<byte> key, int shares, int threshold) =>
        shares == 1 ? [key.ToArray()] : Shamir.Split(key, shares, threshold);

    /// <summary>The key <paramref name="parts"/> (a threshold of the <paramref name="shares"/> handed out) reconstruct.</summary>
    /// <exception cref="ArgumentException">The parts are inconsistent (<see cref="Shamir.Combine"/>).</exception>
    public static byte[] Combine(int shares, IReadOnlyList<byte[]> parts) =>
        shares == 1 ? parts[0].ToArray() : Shamir.Combine(parts);
}
