namespace Morphisms.Kms.HighAvailability;

/// <summary>The active node as the leader row and the lock table describe it (what a standby redirects to).</summary>
/// <param name="NodeId">The active node's random id (new every process start).</param>
/// <param name="Address">Its advertised API address (<c>--api-addr</c>).</param>
/// <param name="ActiveSince">When it became active.</param>
internal sealed record LeaderRecord(string NodeId, Uri Address, DateTimeOffset ActiveSince)
{
    /// <summary>
    /// Whether <paramref name="address"/> is fit to publish and to redirect to: absolute http(s), and nothing but
    /// scheme, host and port (a path of "/" at most; no query, fragment or userinfo).
    /// </summary>
    /// <remarks>
    /// A standby appends the request's path to it, so anything more would send clients elsewhere than the path they
    /// asked for: <c>https://node2:8200/v1/sys/policies/acl/x#</c> turns a redirected policy write into one of
    /// policy <c>x</c>, on a real node (the fragment swallows the rest).
    /// </remarks>
    public static bool IsApiAddress(Uri address) =>
        address.IsAbsoluteUri && address.Scheme is ("http" or "https") && address.AbsolutePath == "/"
            && address.Query.Length == 0 && address.Fragment.Length == 0 && address.UserInfo.Length == 0;

    /// <summary>
    /// Parses an <c>api_addr</c> read back from storage, which the KMS does not trust (whoever can write the database
    /// can write it): null unless <see cref="IsApiAddress"/> holds, so a standby then knows no active node (503) instead
    /// of redirecting there.
    /// </summary>
    public static Uri? ParseStoredApiAddress(string stored) =>
        Uri.TryCreate(stored, UriKind.Absolute, out var address) && IsApiAddress(address) ? address : null;
}
