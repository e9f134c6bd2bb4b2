using System.Globalization;
using System.Security.Cryptography;
using Morphisms.Kms.Http;

namespace Morphisms.Kms.Transit;

/// <summary>
/// Vault's transit ciphertext: <c>vault:vN:BASE64(nonce ‖ ciphertext ‖ tag)</c> with AES-256-GCM, a random
/// 96-bit nonce and a 128-bit tag. Signatures use the same <c>vault:vN:</c> prefix.
/// </summary>
internal static class TransitCiphertext
{
    private const int NonceSize = 12;
    private const int TagSize = 16;

    /// <summary>Encrypts <paramref name="plaintext"/> with version <paramref name="version"/>'s key.</summary>
    public static string Encrypt(TransitKeyVersion key, int version, byte[] plaintext)
    {
        var blob = new byte[NonceSize + plaintext.Length + TagSize];
        var nonce = blob.AsSpan(0, NonceSize);
        RandomNumberGenerator.Fill(nonce);
        using var aes = new AesGcm(key.Key, TagSize);
        aes.Encrypt(nonce, plaintext, blob.AsSpan(NonceSize, plaintext.Length), blob.AsSpan(NonceSize + plaintext.Length));
        return Prefix(version) + Convert.ToBase64String(blob);
    }

    /// <summary>Decrypts a blob from <see cref="Parse"/>; a 400 naming <paramref name="field"/> when it does not authenticate.</summary>
    public static byte[] Decrypt(TransitKeyVersion key, byte[] blob, string field)
    {
        if (blob.Length < NonceSize + TagSize)
        {
            throw KmsException.BadRequest($"invalid '{field}': too short");
        }

        var plaintext = new byte[blob.Length - NonceSize - TagSize];
        using var aes = new AesGcm(key.Key, TagSize);
        try
        {
            aes.Decrypt(blob.AsSpan(0, NonceSize), blob.AsSpan(NonceSize, plaintext.Length), blob.AsSpan(NonceSize + plaintext.Length), plaintext);
        }
        catch (AuthenticationTagMismatchException)
        {
            throw KmsException.BadRequest($"invalid '{field}': message authentication failed");
        }

        return plaintext;
    }

    /// <summary>Splits <c>vault:vN:payload</c> into the version and the decoded payload (base64 or base64url).</summary>
    public static (int Version, byte[] Payload) Parse(string text, string field)
    {
        var parts = text.Split(':');
        if (parts.Length != 3 || parts[0] != "vault" || parts[1].Length < 2 || parts[1][0] != 'v'
            || !int.TryParse(parts[1].AsSpan(1), NumberStyles.None, CultureInfo.InvariantCulture, out var version) || version < 1)
        {
            throw KmsException.BadRequest($"invalid '{field}': expected vault:vN:BASE64");
        }

        return (version, Base64(parts[2], field));
    }

    /// <summary>The <c>vault:vN:</c> prefix.</summary>
    public static string Prefix(int version) => "vault:v" + version.ToString(CultureInfo.InvariantCulture) + ":";

    /// <summary>Standard or URL-safe base64 (JWS signatures use the latter); a 400 naming the field otherwise.</summary>
    public static byte[] Base64(string text, string field)
    {
        var normal = text.Replace('-', '+').Replace('_', '/');
        normal = normal.PadRight(normal.Length + ((4 - (normal.Length % 4)) % 4), '=');
        try
        {
            return Convert.FromBase64String(normal);
        }
        catch (FormatException)
        {
            throw KmsException.BadRequest($"invalid '{field}': not base64");
        }
    }
}
