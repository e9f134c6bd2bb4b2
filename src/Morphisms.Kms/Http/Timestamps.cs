using System.Globalization;

namespace Morphisms.Kms.Http;

/// <summary>Time formats on the wire.</summary>
internal static class Timestamps
{
    /// <summary>RFC 3339 in UTC with fractional seconds, as Vault prints <c>created_time</c>.</summary>
    public static string Rfc3339(DateTimeOffset time) =>
        time.UtcDateTime.ToString("yyyy-MM-dd'T'HH:mm:ss.fffffff'Z'", CultureInfo.InvariantCulture);
}
