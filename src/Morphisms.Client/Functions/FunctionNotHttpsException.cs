namespace Morphisms.Client.Functions;

/// <summary>
/// A request through <see cref="FunctionHttpHandler"/> whose scheme is not https: refused before the connection is opened
/// (or, when a caller replaced the handler's connect callback, before any byte of the request is written), since only a
/// TLS handshake lets the handler check the function's certificate against the pinned KMS root, its attested identity and
/// revocation. <see cref="HttpClient"/> reports it as the inner exception of an <see cref="HttpRequestException"/>.
/// </summary>
public sealed class FunctionNotHttpsException : Exception
{
    /// <summary>Creates the exception for <paramref name="requestUri"/>.</summary>
    /// <param name="requestUri">The refused request's address (null when it had none).</param>
    public FunctionNotHttpsException(Uri? requestUri)
        : base($"{requestUri?.ToString() ?? "a request without an address"} is not https: a function connection is verified by its TLS certificate "
            + "(the pinned KMS root, the function's attested identity, revocation), which plain http has none of, so the request would go out "
            + "in clear to an unverified server; nothing was sent. Use https://, or, for a function you mean to call unattested (tee: none "
            + "behind the development HTTP-mode gateway), a plain HttpClient")
    {
        RequestUri = requestUri;
    }

    /// <summary>The refused request's address.</summary>
    public Uri? RequestUri { get; }
}
