using System.Security.Cryptography;
using System.Text;
using Morphisms.Attestation;

namespace Morphisms.Serving.Hosting;

/// <summary>
/// A secret the serving host hands out and checks as <c>Authorization: Bearer …</c>: the control token (every control
/// route) and each instance's report token (that instance's cold-start report only). 32 random bytes written as 64
/// lowercase hex digits. Checks compare SHA-256 digests in constant time, so neither the token's bytes nor its length
/// leak through timing, and <see cref="ToString"/> never shows the value: a token that reaches a log line or an
/// exception message by mistake stays secret there.
/// </summary>
public sealed class BearerToken
{
    /// <summary>How many random bytes a token has.</summary>
    public const int Bytes = 32;

    private readonly byte[] _digest;

    private BearerToken(string value)
    {
        Value = value;
        _digest = SHA256.HashData(Encoding.ASCII.GetBytes(value));
    }

    /// <summary>The token itself: only for a private file, an instance's environment or an outgoing header.</summary>
    public string Value { get; }

    /// <summary>The <c>Authorization</c> header value that carries this token.</summary>
    public string AuthorizationValue => $"Bearer {Value}";

    /// <summary>A new random token.</summary>
    public static BearerToken New() => new(Convert.ToHexStringLower(RandomNumberGenerator.GetBytes(Bytes)));

    /// <summary>Reads a token from <paramref name="path"/> (the file <see cref="WriteFile"/> wrote).</summary>
    /// <exception cref="InvalidDataException">The file does not hold a token (the message names the file, never its content).</exception>
    /// <exception cref="IOException">The file cannot be read.</exception>
    /// <exception cref="UnauthorizedAccessException">The file cannot be read by this user.</exception>
    public static BearerToken ReadFile(string path)
    {
        var text = File.ReadAllText(path).Trim();
        if (text.Length != 2 * Bytes || !text.All(char.IsAsciiHexDigitLower))
        {
            throw new InvalidDataException($"{path} does not hold a serving token ({2 * Bytes} lowercase hexadecimal digits)");
        }

        return new BearerToken(text);
    }

    /// <summary>Writes the token to <paramref name="path"/>, mode 0600 from the first byte (see <see cref="PrivateFile"/>).</summary>
    public void WriteFile(string path) => PrivateFile.Write(path, Value + "\n");

    /// <summary>True when <paramref name="presented"/> is this token (constant time).</summary>
    public bool Matches(string? presented) =>
        presented is not null && CryptographicOperations.FixedTimeEquals(_digest, SHA256.HashData(Encoding.UTF8.GetBytes(presented)));

    /// <summary>True when <paramref name="authorization"/> (an <c>Authorization</c> header) is <c>Bearer</c> and this token.</summary>
    public bool MatchesAuthorization(string? authorization)
    {
        const string scheme = "Bearer ";
        return authorization is not null
            && authorization.StartsWith(scheme, StringComparison.OrdinalIgnoreCase)
            && Matches(authorization[scheme.Length..].Trim());
    }

    /// <summary>A placeholder, never the token.</summary>
    public override string ToString() => "[bearer token]";
}
