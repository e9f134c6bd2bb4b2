using System.Security.Cryptography;
using System.Text;
using System.Text.RegularExpressions;

namespace Morphisms.Kms.Audit;

/// <summary>
/// The chain format shared by writer and verifier. A line is <c>BODY,"hash":"H","mac":"M"}</c> where BODY is a
/// JSON object without its closing brace that includes <c>"seq"</c> and <c>"prev"</c> (the previous line's H).
/// H = SHA-256(BODY) chains entries so anyone can detect an edit or removal; M = HMAC(chain key, previous M ‖ H)
/// stops someone without the key from rewriting the chain after an edit.
/// </summary>
internal static partial class AuditChain
{
    /// <summary>The <c>prev</c> of the first entry.</summary>
    public static readonly string Genesis = new('0', 64);

    /// <summary>
    /// The field of the notice the KMS writes when it finds its log truncated under it (<see cref="AuditLog"/>): the
    /// previous entry's <c>seq</c>, <c>hash</c> and <c>mac</c>, from which a file beginning with that notice is verified.
    /// </summary>
    public const string ContinuesField = "continues";

    /// <summary>The fixed-length tail of every line.</summary>
    public static readonly int SuffixLength = Suffix(Genesis, "hmac-sha256:" + Genesis).Length;

    /// <summary>SHA-256 of the body, hex.</summary>
    public static string HashBody(string body) => HashBody(Encoding.UTF8.GetBytes(body));

    /// <summary>SHA-256 of the body's UTF-8 bytes, hex.</summary>
    public static string HashBody(ReadOnlySpan<byte> utf8Body) => Convert.ToHexStringLower(SHA256.HashData(utf8Body));

    /// <summary>The chain MAC of an entry.</summary>
    public static string Mac(byte[] chainKey, string previousMac, string hash) =>
        "hmac-sha256:" + Convert.ToHexStringLower(HMACSHA256.HashData(chainKey, Encoding.UTF8.GetBytes(previousMac + hash)));

    /// <summary>The tail appended to a body.</summary>
    public static string Suffix(string hash, string mac) => ",\"hash\":\"" + hash + "\",\"mac\":\"" + mac + "\"}";

    /// <summary>Splits a line into body, hash and MAC; false when the tail is not in the chain format.</summary>
    public static bool TrySplit(string line, out string body, out string hash, out string mac)
    {
        body = hash = mac = "";
        if (line.Length <= SuffixLength)
        {
            return false;
        }

        var m = SuffixPattern().Match(line, line.Length - SuffixLength);
        if (!m.Success)
        {
            return false;
        }

        body = line[..^SuffixLength];
        hash = m.Groups["h"].Value;
        mac = m.Groups["m"].Value;
        return true;
    }

    [GeneratedRegex("\\G,\"hash\":\"(?<h>[0-9a-f]{64})\",\"mac\":\"(?<m>hmac-sha256:[0-9a-f]{64})\"}$", RegexOptions.CultureInvariant)]
    private static partial Regex SuffixPattern();
}
