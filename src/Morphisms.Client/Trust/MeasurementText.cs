using Morphisms.Attestation;

namespace Morphisms.Client.Trust;

/// <summary>
/// The text form KMS and function measurement pins share: <c>tee:</c> then hex, or bare hex read by its size. Each
/// pin type decides which values a TEE takes (a KMS on TDX needs five, a function certificate carries one); the
/// wording of errors is common so <c>--expect-measurement</c> says the same thing wherever it is given.
/// </summary>
internal static class MeasurementText
{
    /// <summary>SNP MEASUREMENT, TDX MRTD and RTMRs: SHA-384.</summary>
    public const int Sha384Length = 48;

    /// <summary>SGX MRENCLAVE: SHA-256.</summary>
    public const int MrEnclaveLength = 32;

    /// <summary>
    /// Splits <paramref name="value"/> (already trimmed) into its TEE and the text after <c>tee:</c>; false when it has
    /// no prefix. <paramref name="kind"/> and <paramref name="syntax"/> complete the error: "a KMS measurement is …".
    /// </summary>
    /// <exception cref="FormatException">The prefix names no TEE.</exception>
    public static bool TrySplitTyped(string value, string kind, string syntax, out TeeType tee, out string body)
    {
        var colon = value.IndexOf(':', StringComparison.Ordinal);
        if (colon < 0)
        {
            tee = default;
            body = value;
            return false;
        }

        var teeName = value[..colon];
        body = value[(colon + 1)..];
        if (!TeeTypes.TryParse(teeName, out tee))
        {
            throw new FormatException($"'{teeName}:' is not a TEE: {kind} is {syntax}");
        }

        return true;
    }

    /// <summary>
    /// An untyped value read as the only single-value measurement of its size: 32 bytes an SGX MRENCLAVE, 48 an SNP
    /// MEASUREMENT. Never TDX: 48 bytes could as well be an MRTD, and the bare form predates the TEE being named, so a
    /// guess there would let a value meant for one TEE pass for another.
    /// </summary>
    /// <exception cref="FormatException">Not hex, or of another size.</exception>
    public static (TeeType Tee, byte[] Value) Untyped(string value, string kind, string syntax)
    {
        if (!Hex.TryParse(value, out var bytes))
        {
            throw new FormatException($"not a hexadecimal string: {kind} is {syntax}");
        }

        return bytes.Length switch
        {
            MrEnclaveLength => (TeeType.Sgx, bytes),
            Sha384Length => (TeeType.Snp, bytes),
            _ => throw new FormatException($"an untyped measurement of {bytes.Length} bytes: {kind} is {syntax}"),
        };
    }

    /// <summary>One value after <c>tee:</c>: exactly <paramref name="length"/> bytes of hex; <paramref name="what"/> names it in errors.</summary>
    /// <exception cref="FormatException">Not hex, or of another length.</exception>
    public static byte[] Component(string hex, int length, string what)
    {
        var value = hex.Trim();
        if (!value.All(char.IsAsciiHexDigit))
        {
            throw new FormatException($"{what} is not hexadecimal");
        }

        if (value.Length != 2 * length)
        {
            throw new FormatException($"{what} must be {2 * length} hex digits, not {value.Length}");
        }

        return Convert.FromHexString(value);
    }

    /// <summary>A copy of <paramref name="value"/>, which must be <paramref name="length"/> bytes.</summary>
    /// <exception cref="ArgumentException">Another length.</exception>
    public static byte[] Exactly(ReadOnlySpan<byte> value, int length, string what) =>
        value.Length == length ? value.ToArray() : throw new ArgumentException($"{what} is {length} bytes, not {value.Length}");
}
