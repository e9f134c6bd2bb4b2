namespace Morphisms.Attestation;

/// <summary>
/// What a piece of evidence claims, common to every TEE. Subclasses add the fields of their format.
/// Byte fields are exposed as read-only memory; <see cref="Hex"/> formats them for humans and JSON.
/// </summary>
public abstract record EvidenceClaims
{
    /// <summary>The TEE that produced the evidence.</summary>
    public abstract TeeType Tee { get; }

    /// <summary>The primary launch measurement: SNP MEASUREMENT, SGX MRENCLAVE, TDX MRTD.</summary>
    public abstract ReadOnlyMemory<byte> Measurement { get; }

    /// <summary>The 64 bytes of caller data bound into the evidence (REPORT_DATA / REPORTDATA).</summary>
    public abstract ReadOnlyMemory<byte> ReportData { get; }

    /// <summary>Whether the TEE allows debugging (SNP policy bit 19, SGX ATTRIBUTES.DEBUG, TDX TD_ATTRIBUTES.DEBUG).</summary>
    public abstract bool DebugAllowed { get; }

    /// <summary>
    /// True when the evidence chains to a simulated root rather than to a hardware vendor's.
    /// Simulated evidence proves nothing about hardware; every consumer must say so.
    /// </summary>
    public bool Simulated { get; init; }
}

/// <summary>Lowercase hexadecimal formatting used everywhere bytes are shown.</summary>
public static class Hex
{
    /// <summary>Lowercase hex of <paramref name="bytes"/>.</summary>
    public static string Of(ReadOnlySpan<byte> bytes) => Convert.ToHexStringLower(bytes);

    /// <summary>Lowercase hex of <paramref name="bytes"/>.</summary>
    public static string Of(ReadOnlyMemory<byte> bytes) => Convert.ToHexStringLower(bytes.Span);

    /// <summary>Parses hex (either case, optional <c>0x</c>); throws <see cref="FormatException"/> naming <paramref name="what"/>.</summary>
    public static byte[] Parse(string text, string what) =>
        TryParse(text, out var bytes) ? bytes : throw new FormatException($"{what}: not a hexadecimal string");

    /// <summary>
    /// Parses hex as <see cref="Parse"/> does (either case, optional <c>0x</c>, surrounding white space ignored); false,
    /// and no bytes, for anything else — for callers that word their own error.
    /// </summary>
    public static bool TryParse(string? text, out byte[] bytes)
    {
        bytes = [];
        if (text is null)
        {
            return false;
        }

        var s = text.AsSpan().Trim();
        if (s.StartsWith("0x", StringComparison.OrdinalIgnoreCase))
        {
            s = s[2..];
        }

        if (s.Length % 2 != 0)
        {
            return false;
        }

        var parsed = new byte[s.Length / 2];
        if (Convert.FromHexString(s, parsed, out _, out _) != System.Buffers.OperationStatus.Done)
        {
            return false;
        }

        bytes = parsed;
        return true;
    }
}
