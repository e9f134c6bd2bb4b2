using System.Text.RegularExpressions;

namespace Morphisms.Deploy.Manifests;

/// <summary>
/// Kubernetes' name rules for what an export writes from its options: a namespace is a DNS label (RFC 1123), a Secret a
/// DNS subdomain. Checked at export, so a bad option is a usage error rather than YAML the API server refuses later.
/// </summary>
public static partial class KubernetesNames
{
    /// <summary>Refuses <paramref name="value"/> unless null or an RFC 1123 label (≤ 63; lowercase letters, digits, '-').</summary>
    /// <exception cref="ArgumentException">Named after <paramref name="option"/>.</exception>
    public static void RequireLabel(string? value, string option)
    {
        if (value is not null && (value.Length > 63 || !Label().IsMatch(value)))
        {
            throw new ArgumentException($"{option} must be a DNS label (at most 63 lowercase letters, digits and '-', starting and ending with a letter or digit), got '{value}'");
        }
    }

    /// <summary>Refuses <paramref name="value"/> unless null or an RFC 1123 subdomain (≤ 253; labels joined by '.').</summary>
    /// <exception cref="ArgumentException">Named after <paramref name="option"/>.</exception>
    public static void RequireSubdomain(string? value, string option)
    {
        if (value is not null && (value.Length > 253 || !Subdomain().IsMatch(value)))
        {
            throw new ArgumentException($"{option} must be a DNS subdomain name (at most 253 lowercase letters, digits, '-' and '.'), got '{value}'");
        }
    }

    [GeneratedRegex("^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")]
    private static partial Regex Label();

    [GeneratedRegex("^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")]
    private static partial Regex Subdomain();
}
