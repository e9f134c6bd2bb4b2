namespace Morphisms.Attestation.Trust;

/// <summary>
/// The one redirect a client holding a KMS token follows: an HA standby's 307 or 308 to its active node, only to https
/// and only for the same path and query (scheme, host and port may change), at most <see cref="MaxRedirects"/> times.
/// <see cref="HttpClient"/>'s own redirects are no fit: they re-send <c>X-Vault-Token</c> (it strips only
/// <c>Authorization</c>) to whatever path a <c>Location</c> names, and turn a POST into a GET after a 301-303. The
/// standby's <c>Location</c> comes from storage the KMS does not trust; what keeps the token from another server is
/// the pin, applied to every connection, redirect targets included, with the host name checked against the target's.
/// </summary>
public static class KmsRedirect
{
    /// <summary>How many 307/308 redirects one request follows (an HA standby to the active node is one).</summary>
    public const int MaxRedirects = 3;

    /// <summary>
    /// Whether a redirect from <paramref name="target"/> to <paramref name="next"/> asks for the same request elsewhere:
    /// same path and query, no user info or fragment. A standby sends the path and query back as the client sent them,
    /// still escaped; both sides compare as <see cref="Uri"/> normalises them, which is what goes on the wire on each
    /// hop, so a <c>Location</c> that decoded an escape (<c>%2541</c> as <c>%41</c>, another key) is another path, and
    /// one with a path of its own would land the token and body on another path of a real, pinned node.
    /// </summary>
    public static bool KeepsRequest(Uri target, Uri next)
    {
        ArgumentNullException.ThrowIfNull(target);
        ArgumentNullException.ThrowIfNull(next);
        return next.PathAndQuery == target.PathAndQuery && next.UserInfo.Length == 0 && next.Fragment.Length == 0;
    }

    /// <summary>
    /// Checks a 3xx <paramref name="response"/> to a request for <paramref name="target"/>, after
    /// <paramref name="followed"/> redirects: null and the next hop in <paramref name="next"/> when it may be followed,
    /// else why not (<paramref name="next"/> is the target it named, or null when it named none).
    /// </summary>
    public static KmsRedirectRefusal? Check(Uri target, HttpResponseMessage response, int followed, out Uri? next)
    {
        ArgumentNullException.ThrowIfNull(response);
        return Check(target, (int)response.StatusCode, response.Headers.Location, followed, out next);
    }

    /// <summary>
    /// <see cref="Check(Uri, HttpResponseMessage, int, out Uri?)"/> for a response already read: its
    /// <paramref name="status"/> and <c>Location</c> (<paramref name="location"/>, null when it had none).
    /// </summary>
    public static KmsRedirectRefusal? Check(Uri target, int status, Uri? location, int followed, out Uri? next)
    {
        ArgumentNullException.ThrowIfNull(target);
        next = null;

        // 301/302/303 would turn a POST into a GET without its body: no standby sends them.
        if (status is not (307 or 308) || location is null)
        {
            return KmsRedirectRefusal.NotAStandbysRedirect;
        }

        next = location.IsAbsoluteUri ? location : new Uri(target, location);
        if (next.Scheme != Uri.UriSchemeHttps)
        {
            // Only https can show the pinned certificate, and plain http would carry the token in clear.
            return KmsRedirectRefusal.NotHttps;
        }

        if (!KeepsRequest(target, next))
        {
            return KmsRedirectRefusal.AnotherRequest;
        }

        return followed + 1 > MaxRedirects ? KmsRedirectRefusal.TooMany : null;
    }
}

/// <summary>Why <see cref="KmsRedirect.Check(Uri, int, Uri?, int, out Uri?)"/> does not follow a redirect.</summary>
public enum KmsRedirectRefusal
{
    /// <summary>Not a 307 or 308 with a <c>Location</c>.</summary>
    NotAStandbysRedirect,

    /// <summary>To a target that is not https.</summary>
    NotHttps,

    /// <summary>To another path or query, or with user info or a fragment.</summary>
    AnotherRequest,

    /// <summary>More than <see cref="KmsRedirect.MaxRedirects"/> in a row.</summary>
    TooMany,
}
