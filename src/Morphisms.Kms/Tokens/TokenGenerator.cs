using System.Security.Cryptography;

namespace Morphisms.Kms.Tokens;

/// <summary>Random token and accessor strings, in Vault's <c>hvs.</c> style.</summary>
internal static class TokenGenerator
{
    /// <summary>The prefix of service tokens.</summary>
    public const string ServicePrefix = "hvs.";

    private const string Alphabet = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

    /// <summary>A new token: <c>hvs.</c> and 32 base62 characters (about 190 bits).</summary>
    public static string NewToken() => ServicePrefix + RandomNumberGenerator.GetString(Alphabet, 32);

    /// <summary>A new accessor: 24 base62 characters.</summary>
    public static string NewAccessor() => RandomNumberGenerator.GetString(Alphabet, 24);
}
