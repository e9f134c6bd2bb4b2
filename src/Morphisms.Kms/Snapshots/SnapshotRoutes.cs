using Morphisms.Kms.Http;

namespace Morphisms.Kms.Snapshots;

/// <summary>
/// <c>sys/storage/snapshot</c> (sudo): GET returns a <see cref="StorageSnapshot"/> document, POST with that document
/// as the body restores it and seals the KMS (unseal with the snapshot's shares). Vault's raft snapshot moves an
/// opaque binary; this one is JSON so it travels through the normal JSON pipeline and body limit.
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
                return new KmsResponse { RawBody = snapshot.ToJson(core.Time.GetUtcNow()) };
            }),
            (Operation.Update, async (r, _, ct) =>
            {
                // Everything is checked before the KMS seals: a bad snapshot is a 400 that changes nothing.
                var snapshot = StorageSnapshot.Parse(r.Data);
                var state = r.RequireState();
                state.Audit?.Notice($"snapshot restore: {snapshot.Entries.Count} entries; sealing");
                await core.RestoreAsync(state, snapshot, ct).ConfigureAwait(false);
                return null;
            }));
    }
}
