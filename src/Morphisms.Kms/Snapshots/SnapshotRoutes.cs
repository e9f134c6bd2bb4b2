using Morphisms.Kms.Http;

namespace Morphisms.Kms.Snapshots;

/// <summary>
/// <c>sys/storage/snapshot</c> (sudo): GET returns a <see cref="StorageSnapshot"/> document, POST with that document
/// as the body restores it and seals the KMS (unseal with the snapshot's shares). Vault's raft snapshot moves an
/// opaque binary; this one is JSON so it travels through the normal JSON pipeline and body limit. A restore answers
/// once the store is replaced (the other requests drained first), or with the error that stopped it, and its 200 carries a warning that everything newer than the snapshot's <c>created_at</c> is rolled back: Vault's restore does
/// the same silently, and here that includes revocations, which an operator must then repeat.
/// </summary>
internal static class SnapshotRoutes
{
    public static void Register(RouteTable routes, KmsCore core)
    {
        routes.Add(
            new Route("sys/storage/snapshot", "storage/snapshot") { Sudo = true },
            (Operation.Read, async (r, _, ct) =>
            {
                var snapshot = await core.TakeSnapshotAsync(r.RequireState(), ct).ConfigureAwait(false);
                r.RequireState().Audit?.Notice($"snapshot taken: {snapshot.Entries.Count} entries");
                return new KmsResponse { RawBody = snapshot.ToJson() };
            }),
            (Operation.Update, (r, _, ct) => RestoreAsync(core, r, allowForeign: false, ct)));

        // Vault's snapshot-force: a snapshot another KMS made replaces this one's store (and, at the next unseal, its
        // root CA and every secret) only when asked for by this separate path, never by the everyday one.
        routes.Add(
            new Route("sys/storage/snapshot-force", "storage/snapshot-force") { Sudo = true },
            (Operation.Update, (r, _, ct) => RestoreAsync(core, r, allowForeign: true, ct)));
    }

    private static async Task<KmsResponse?> RestoreAsync(KmsCore core, KmsRequest r, bool allowForeign, CancellationToken ct)
    {
        // Everything is checked before the KMS seals: a bad snapshot is a 400 that changes nothing.
        var snapshot = StorageSnapshot.Parse(r.Data);

        // Parse refuses unknown fields, so every field left was used: no "ignored parameters" warning.
        foreach (var name in r.Data.Select(p => p.Key))
        {
            r.Fields.Has(name);
        }

        var state = r.RequireState();
        state.Audit?.Notice($"snapshot restore: {snapshot.Entries.Count} entries, created_at {snapshot.CreatedAt}; sealing");
        // Returns once the store is replaced; a failed replacement is this request's error.
        var verified = await core.RestoreAsync(state, snapshot, allowForeign, ct).ConfigureAwait(false);
        var response = new KmsResponse();
        response.Warnings.Add($"the store was replaced by the snapshot created_at {snapshot.CreatedAt}: everything written after that is rolled back, "
            + "including token revocations, retired revisions, revoked certificates, barrier and transit key rotations and secret writes; "
            + "revoke, retire and rotate again whatever was revoked, retired or rotated since");
        if (!verified)
        {
            response.Warnings.Add("the snapshot comes from another root key: its hmac, which covers created_at, is checked at the first unseal with its shares");
        }

        return response;
    }
}
