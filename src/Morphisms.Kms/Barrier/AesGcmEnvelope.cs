using System.Buffers.Binary;
using System.Security.Cryptography;
using System.Text;

namespace Morphisms.Kms.Barrier;

/// <summary>
/// The barrier's ciphertext format, as Vault's AESGCM version 2: <c>term (uint32 BE) | version (0x02) |
/// nonce (12) | ciphertext | tag (16)</c>. The storage key is the associated data, so a ciphertext copied to
/// another key fails authentication instead of being served as that key's value.
/// </summary>
internal static class AesGcmEnvelope
{
    /// <summary>The format version byte: AES-256-GCM with the key path as associated data.</summary>
    public const byte Version = 2;

    private const int HeaderSize = 4 + 1;
    private const int NonceSize = 12;
    private const int TagSize = 16;

    /// <summary>Bytes added to every plaintext.</summary>
    public const int Overhead = HeaderSize + NonceSize + TagSize;

    /// <summary>Encrypts <paramref name="plaintext"/> for <paramref name="path"/> under <paramref name="key"/> of <paramref name="term"/>.</summary>
    public static byte[] Seal(ReadOnlySpan<byte> key, uint term, string path, ReadOnlySpan<byte> plaintext)
    {
        var output = new byte[Overhead + plaintext.Length];
        BinaryPrimitives.WriteUInt32BigEndian(output, term);
        output[4] = Version;
        var nonce = output.AsSpan(HeaderSize, NonceSize);
        RandomNumberGenerator.Fill(nonce);
        using var aes = new AesGcm(key, TagSize);
        aes.Encrypt(nonce, plaintext, output.AsSpan(HeaderSize + NonceSize, plaintext.Length), output.AsSpan(output.Length - TagSize), Encoding.UTF8.GetBytes(path));
        return output;
    }

    /// <summary>Reads the term number from a ciphertext header.</summary>
    /// <exception cref="BarrierException">The ciphertext is too short or of an unknown version.</exception>
    public static uint ReadTerm(ReadOnlySpan<byte> ciphertext)
    {
        if (ciphertext.Length < Overhead)
        {
            throw new BarrierException("ciphertext too short");
        }

        if (ciphertext[4] != Version)
        {
            throw new BarrierException($"unknown ciphertext version {ciphertext[4]}");
        }

        return BinaryPrimitives.ReadUInt32BigEndian(ciphertext);
    }

    /// <summary>Decrypts a ciphertext made by <see cref="Seal"/> for the same path.</summary>
    /// <exception cref="BarrierException">The ciphertext is malformed, was made for another path, or was altered.</exception>
    public static byte[] Open(ReadOnlySpan<byte> key, string path, ReadOnlySpan<byte> ciphertext)
    {
        _ = ReadTerm(ciphertext);
        var plaintext = new byte[ciphertext.Length - Overhead];
        Open(key, path, ciphertext, plaintext);
        return plaintext;
    }

    /// <summary>
    /// Decrypts into <paramref name="plaintext"/>, a buffer the caller owns (and can zero), of at least the
    /// ciphertext's length minus <see cref="Overhead"/>; returns the plaintext's length.
    /// </summary>
    /// <exception cref="BarrierException">The ciphertext is malformed, was made for another path, or was altered.</exception>
    public static int Open(ReadOnlySpan<byte> key, string path, ReadOnlySpan<byte> ciphertext, Span<byte> plaintext)
    {
        _ = ReadTerm(ciphertext);
        var nonce = ciphertext.Slice(HeaderSize, NonceSize);
        var body = ciphertext[(HeaderSize + NonceSize)..^TagSize];
        var tag = ciphertext[^TagSize..];
        try
        {
            using var aes = new AesGcm(key, TagSize);
            aes.Decrypt(nonce, body, tag, plaintext[..body.Length], Encoding.UTF8.GetBytes(path));
        }
        catch (AuthenticationTagMismatchException)
        {
            throw new BarrierException($"ciphertext at '{path}' failed authentication");
        }

        return body.Length;
    }
}
