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

    /// <summary>
    /// How old a fetched CRL may be before it is fetched again (30 s by default): the longest a client keeps trusting a
    /// certificate after the KMS revoked it. A CRL past its <c>nextUpdate</c> is fetched again whatever its age.
    /// </summary>
    public TimeSpan CrlMaxAge { get; init; } = TimeSpan.FromSeconds(30);

    /// <summary>How long one CRL fetch from the KMS may take before the handshakes waiting for it are refused (10 s by default).</summary>
    public TimeSpan FetchTimeout { get; init; } = TimeSpan.FromSeconds(10);

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
