namespace Morphisms.Serving.Spec;

/// <summary>RFC 1123 labels, lowercase: what function names and traffic tags must be, since both become host names.</summary>
internal static class DnsLabel
{
    /// <summary>The longest label DNS allows (RFC 1035).</summary>
    public const int MaxLength = 63;

    /// <summary>True for 1–63 characters of a–z, 0–9 and '-', not starting or ending with '-'.</summary>
    public static bool IsValid(string label) =>
        label.Length is > 0 and <= MaxLength
        && label.All(c => c is (>= 'a' and <= 'z') or (>= '0' and <= '9') or '-')
        && label[0] != '-' && label[^1] != '-';
}
