namespace Morphisms.Kms.Updates;

/// <summary>
/// Revokes every certificate issued to one revision of a function, so it appears in the CRL. The seam between
/// retiring a revision and the PKI engine: <see cref="IndexedCertificateRevoker"/> revokes the serials attest-login
/// recorded through the PKI mount's own <c>revoke</c> route; a PKI engine that tracks function serials itself can
/// implement this instead.
/// </summary>
internal interface IFunctionCertificateRevoker
{
    /// <summary>Revokes the certificates of <paramref name="function"/> revision <paramref name="revision"/>; returns how many were revoked now.</summary>
    Task<int> RevokeAsync(UnsealedState state, string function, int revision, CancellationToken ct);
}
