using System.Security.Cryptography.X509Certificates;

namespace Morphisms.Client.Functions;

/// <summary>One handler's revocation check: its CRL source (the pinned KMS), the shared cache, the max age and the fetch timeout.</summary>
internal sealed class FunctionRevocationChecker(FunctionCrlCache cache, IFunctionCrlSource source, TimeSpan maxAge, TimeSpan? fetchTimeout = null)
{
    private readonly TimeSpan _fetchTimeout = fetchTimeout ?? FunctionRevocationOptions.DefaultFetchTimeout;

    /// <summary>Why <paramref name="leaf"/>, issued by <paramref name="issuingCa"/>, must be refused, or null.</summary>
    public string? Check(X509Certificate2 leaf, X509Certificate2 issuingCa, DateTimeOffset now) =>
        cache.Check(leaf, issuingCa, now, maxAge, _fetchTimeout, source);

    /// <summary>Fetches the default issuer's CRL ahead of a handshake, unless one is young enough (<see cref="FunctionCrlCache.WarmAsync"/>).</summary>
    public Task WarmAsync(DateTimeOffset now, CancellationToken cancellationToken) =>
        cache.WarmAsync(source, now, maxAge, _fetchTimeout, cancellationToken);
}
