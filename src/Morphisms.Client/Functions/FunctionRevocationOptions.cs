using Morphisms.Client.Trust;

namespace Morphisms.Client.Functions;

/// <summary>Whether a client checks function certificates against the KMS's CRL.</summary>
public enum RevocationCheck
{
    /// <summary>
    /// Every handshake's certificate is looked up in a current CRL of the CA that issued it, fetched from the pinned KMS;
    /// without such a CRL the connection is refused (fail closed).
    /// </summary>
    Required = 0,

    /// <summary>
    /// INSECURE: no CRL is fetched, so an instance of a retired revision (or a deleted function) stays trusted until its
    /// certificate expires (the KMS's <c>--function-cert-ttl</c>, 15 minutes by default). A warning says so.
    /// </summary>
    Off = 1,
}

/// <summary>
/// How <see cref="FunctionHttpHandler"/> checks revocation of function certificates. The KMS revokes every certificate
/// attest-login issued for a revision when the revision is retired or its function deleted, into the CRL of the
/// <c>pki/</c> mount's issuer that signed it; the handler fetches that CRL from the KMS the trust record pins, over TLS
/// to the KMS key <c>morph kms trust</c> attested, and refuses a listed certificate. So a retirement reaches a client
/// within <see cref="CrlMaxAge"/>, not only when the certificate expires.
/// </summary>
public sealed record FunctionRevocationOptions
{
    /// <summary>Whether to check (<see cref="RevocationCheck.Required"/>, the default) or not (<see cref="RevocationCheck.Off"/>, insecure).</summary>
    public RevocationCheck Check { get; init; } = RevocationCheck.Required;

    /// <summary>The default <see cref="FetchTimeout"/>.</summary>
    internal static readonly TimeSpan DefaultFetchTimeout = TimeSpan.FromSeconds(10);

    /// <summary>
    /// How old a fetched CRL may be before it is no longer used (30 s by default): the longest a client keeps trusting a
    /// certificate after the KMS revoked it. Past half this age, the next handshake that uses the CRL starts fetching its
    /// successor in the background (one fetch per CA at a time) and is answered from the CRL held, so a steady stream of
    /// handshakes never waits; only one that finds no CRL younger than this (the first per CA, or after a pause) waits for
    /// a fetch. A CRL past its <c>nextUpdate</c> is fetched again whatever its age.
    /// </summary>
    public TimeSpan CrlMaxAge { get; init; } = TimeSpan.FromSeconds(30);

    /// <summary>
    /// How long one whole CRL fetch from the KMS may take (10 s by default): all its requests together — the default
    /// issuer's CRL, then, for a rotated issuer, the issuer list and each issuer's CRL, each with up to
    /// <see cref="KmsTlsPin.MaxRedirects"/> redirects — after which it fails. It also bounds how long a handshake waits for a
    /// fetch under way: when it runs out, the handshake is refused (fail closed).
    /// </summary>
    public TimeSpan FetchTimeout { get; init; } = DefaultFetchTimeout;

    /// <summary>The CRLs already fetched (default: <see cref="FunctionCrlCache.Shared"/>, shared by every handler of the process).</summary>
    public FunctionCrlCache? Cache { get; init; }

    /// <summary>
    /// The trust store the trust record comes from (<c>morph kms trust</c>'s), or null. With a store, a CRL fetch that an HA
    /// standby redirects (307/308) to its active node follows the redirect when that node presents a TLS key a record of
    /// the store attests for the same root CA (as <c>morph kms</c> does, <see cref="KmsTlsPin"/>), so a failover does not
    /// stop every call; without one, a redirect is not followed and the fetch, hence the call, fails.
    /// </summary>
    public KmsTrustStore? TrustStore { get; init; }

    /// <summary>
    /// Where the warning for <see cref="RevocationCheck.Off"/> goes, once per handler created (default: standard error).
    /// </summary>
    public Action<string>? OnWarning { get; init; }

    /// <summary>Where CRLs come from instead of the trust record's KMS (tests).</summary>
    internal IFunctionCrlSource? Source { get; init; }

    /// <summary>The warning for <see cref="RevocationCheck.Off"/>.</summary>
    public const string OffWarning =
        "WARNING: revocation checking of function certificates is OFF: the KMS's CRL is not fetched, so an instance of a "
        + "retired revision or a deleted function stays trusted until its certificate expires (the KMS's --function-cert-ttl, "
        + "15 minutes by default). Turn it off only to reach a KMS whose CRL cannot be fetched, never as a default.";
}
