using System.Text.Json.Nodes;
using Morphisms.Kms.Http;
using Morphisms.Kms.Pki;

namespace Morphisms.Kms.Updates;

/// <summary>
/// Revokes a revision's certificates from the serials recorded at login, through the function-certificate mount's
/// own <c>revoke</c> route (so revocation, the CRL number and the CRL itself stay the PKI engine's business).
/// A serial the mount no longer knows (the mount was re-created) is skipped; the index entry goes either way. A
/// certificate past the CRL's retention (<see cref="PkiBackend.ExpiredRetention"/> after its NotAfter) is not
/// revoked: the CRL would drop it again, and each revocation rewrites the CRL, so revoking a long-lived revision's
/// expired certificates cost time quadratic in their number. Their entries go a thousand per transaction.
/// </summary>
internal sealed class IndexedCertificateRevoker(KmsCore core) : IFunctionCertificateRevoker
{
    // Deleting an expired entry is idempotent, so batches need not be one transaction: a walk cut short leaves the
    // rest for the next one. Batches keep a revision that logged in for years from making one huge transaction.
    private const int ExpiredBatch = 1000;

    /// <inheritdoc />
    public async Task<int> RevokeAsync(UnsealedState state, string function, int revision, CancellationToken ct)
    {
        var entries = await IssuedCredentials.CertEntriesAsync(state.Barrier, function, revision, ct).ConfigureAwait(false);
        if (entries.Count == 0)
        {
            return 0;
        }

        var now = core.Time.GetUtcNow();
        var expired = entries.Where(e => e.NotAfter is { } notAfter && PkiBackend.PastRetention(notAfter, now)).ToList();
        foreach (var batch in expired.Chunk(ExpiredBatch))
        {
            await state.Barrier.TransactAsync([.. batch.Select(e => (IssuedCredentials.CertKey(function, revision, e.Key), (byte[]?)null))], ct).ConfigureAwait(false);
        }

        var revoke = state.Mounts.Resolve(FunctionCertificateIssuer.MountPath) is { Backend: PkiBackend pki, Entry.Path: FunctionCertificateIssuer.MountPath }
            && pki.Routes.Find("revoke") is { } found && found.Route.HandlerFor(Operation.Update) is { } handler
                ? (found.Match, handler)
                : ((RouteMatch, RouteHandler)?)null;
        var revoked = 0;
        foreach (var (key, serial, _) in entries.Except(expired))
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

            await state.Barrier.DeleteAsync(IssuedCredentials.CertKey(function, revision, key), ct).ConfigureAwait(false);
        }

        return revoked;
    }
}
