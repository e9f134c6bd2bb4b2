using System.Text.Json.Nodes;
using Morphisms.Kms.Http;
using Morphisms.Kms.Pki;

namespace Morphisms.Kms.Updates;

/// <summary>
/// Revokes a revision's certificates from the serials recorded at login, through the function-certificate mount's
/// own <c>revoke</c> route (so revocation, the CRL number and the CRL itself stay the PKI engine's business).
/// A serial the mount no longer knows (the mount was re-created) is skipped; the index entry goes either way.
/// </summary>
internal sealed class IndexedCertificateRevoker : IFunctionCertificateRevoker
{
    /// <inheritdoc />
    public async Task<int> RevokeAsync(UnsealedState state, string function, int revision, CancellationToken ct)
    {
        var serials = await IssuedCredentials.SerialsAsync(state.Barrier, function, revision, ct).ConfigureAwait(false);
        if (serials.Count == 0)
        {
            return 0;
        }

        var revoke = state.Mounts.Resolve(FunctionCertificateIssuer.MountPath) is { Backend: PkiBackend pki, Entry.Path: FunctionCertificateIssuer.MountPath }
            && pki.Routes.Find("revoke") is { } found && found.Route.HandlerFor(Operation.Update) is { } handler
                ? (found.Match, handler)
                : ((RouteMatch, RouteHandler)?)null;
        var revoked = 0;
        foreach (var serial in serials)
        {
            if (revoke is { } r)
            {
                var request = new KmsRequest
                {
                    Id = Guid.NewGuid().ToString(),
                    Operation = Operation.Update,
                    Path = FunctionCertificateIssuer.MountPath + "revoke",
                    Data = new JsonObject { ["serial_number"] = serial },
                    State = state,
                    MountPoint = FunctionCertificateIssuer.MountPath,
                    RelativePath = "revoke",
                };
                try
                {
                    await r.Item2(request, r.Item1, ct).ConfigureAwait(false);
                    revoked++;
                }
                catch (KmsException e) when (e.StatusCode == 400)
                {
                    // Issued by a pki/ mount that has since been replaced: nothing left to revoke there.
                }
            }

            await state.Barrier.DeleteAsync(IssuedCredentials.CertKey(function, revision, serial), ct).ConfigureAwait(false);
        }

        return revoked;
    }
}
