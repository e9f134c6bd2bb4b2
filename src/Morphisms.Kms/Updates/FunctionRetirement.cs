using System.Globalization;
using Morphisms.Kms.Barrier;
using Morphisms.Kms.Functions;
using Morphisms.Kms.Http;
using Morphisms.Kms.Tokens;

namespace Morphisms.Kms.Updates;

/// <summary>
/// Retiring a revision: mark it retired (logins with its measurement are refused from then on), then revoke every
/// token and certificate attest-login issued for it. Logins record what they issue before checking the revision
/// once more, so a login racing a retirement either is swept by it or sees the retirement and undoes itself.
/// </summary>
internal sealed class FunctionRetirement(IFunctionCertificateRevoker certificates)
{
    // Pruning lists every index entry of the revision; doing it on every login made a login's cost grow with the number
    // of live logins (quadratic over a token lifetime at hundreds of logins per second). Once a minute per revision
    // keeps the index bounded by a minute's worth of expired entries. Losing this on restart or failover only means
    // one earlier prune.
    private static readonly TimeSpan PruneInterval = TimeSpan.FromMinutes(1);
    private readonly System.Collections.Concurrent.ConcurrentDictionary<(string Function, int Revision), DateTimeOffset> _lastPrune = new();

    /// <summary>Retires <paramref name="revision"/> and revokes its credentials; returns the record and how many tokens and certificates went.</summary>
    public async Task<(FunctionRecord Record, int Tokens, int Certificates)> RetireAsync(UnsealedState state, string function, int revision, CancellationToken ct)
    {
        var record = await state.Functions.RetireAsync(function, revision, ct).ConfigureAwait(false);
        var (tokens, certs) = await RevokeCredentialsAsync(state, function, revision, ct).ConfigureAwait(false);
        return (record, tokens, certs);
    }

    /// <summary>
    /// Revokes what every revision of <paramref name="function"/> up to <paramref name="lastRevision"/> was issued (it
    /// is being, or was, deleted); returns how many tokens and certificates went. The revisions come from the issued
    /// index, which outlives the record, so this also finishes a deletion whose revocation was interrupted (the
    /// function, or its tombstone, is then <paramref name="record"/>, or null when nothing is left of it); with
    /// <paramref name="record"/> its revisions are walked too, for a certificate revoker that tracks serials itself.
    /// Revisions above <paramref name="lastRevision"/> belong to a registration of the name after the deletion (it
    /// numbers after the deleted function's last revision), and are left alone however the two interleave.
    /// Idempotent: revoked entries leave the index, so with nothing left and no record it costs one listing.
    /// </summary>
    public async Task<(int Tokens, int Certificates)> RevokeAllAsync(UnsealedState state, string function, FunctionRecord? record, int lastRevision, CancellationToken ct)
    {
        var revisions = await IssuedCredentials.RevisionsAsync(state.Barrier, function, ct).ConfigureAwait(false);
        var (tokens, certs) = (0, 0);
        foreach (var revision in revisions.Union(record?.Revisions.Select(r => r.Revision) ?? []).Where(r => r <= lastRevision).Order())
        {
            var (t, c) = await RevokeCredentialsAsync(state, function, revision, ct).ConfigureAwait(false);
            (tokens, certs) = (tokens + t, certs + c);
        }

        return (tokens, certs);
    }

    /// <summary>
    /// Called by attest-login while issuing: adds the index entries naming the login's token and certificate to
    /// <paramref name="writes"/>, the transaction that creates both, so no credential exists unindexed and the index
    /// names none that does not exist.
    /// </summary>
    public Task IndexLoginAsync(UnsealedState state, string function, int revision, TokenEntry token, string certificateSerial, DateTimeOffset certificateNotAfter, WriteSet writes, CancellationToken ct)
    {
        var maxExpiry = token.CreationTime + (token.ExplicitMaxTtl > 0 ? TimeSpan.FromSeconds(token.ExplicitMaxTtl) : state.Tokens.Options.MaxTtl);
        var login = new IssuedLogin(function, revision, token.Hash, maxExpiry, certificateSerial, certificateNotAfter);
        return IssuedCredentials.AddAsync(state.Barrier, login, token.CreationTime, PruneDue(function, revision, token.CreationTime), writes, ct);
    }

    /// <summary>
    /// Called by attest-login once its credentials and their index entries are committed: refuses the login (revoking
    /// what it was issued) if the revision was retired or the function deleted meanwhile, also when the name was
    /// registered afresh since. A retirement marks the
    /// revision before it walks the index, and the login commits its index entries before this check, so either the
    /// retirement's walk finds them or this check finds the mark.
    /// </summary>
    /// <exception cref="KmsException">403 <c>attestation refused: revision N of function F retired</c>.</exception>
    public async Task RefuseIfRetiredAsync(UnsealedState state, string function, int revision, CancellationToken ct)
    {
        var record = await state.Functions.GetAsync(function, ct).ConfigureAwait(false);
        var matched = record?.Revisions.Find(r => r.Revision == revision);
        if (matched is { Status: not RevisionStatus.Retired })
        {
            return;
        }

        // No such revision: either the function whose values matched was deleted (and the name maybe registered afresh
        // since, numbering after the deleted function's revisions, as the name's mark records), or the revision left a
        // long history (the registry keeps the newest revisions only) and is no more accepted than a retired one.
        var deleted = matched is null
            && (record is null || revision <= await state.Functions.DeletedUpToAsync(function, ct).ConfigureAwait(false));
        await RevokeCredentialsAsync(state, function, revision, ct).ConfigureAwait(false);
        throw Retired(function, revision, deleted);
    }

    /// <summary>Whether this login should also prune the revision's expired index entries (at most once per minute per revision).</summary>
    internal bool PruneDue(string function, int revision, DateTimeOffset now)
    {
        var key = (function, revision);
        var last = _lastPrune.GetOrAdd(key, DateTimeOffset.MinValue);
        return now - last >= PruneInterval && _lastPrune.TryUpdate(key, now, last);
    }

    /// <summary>The refusal for a login whose revision is retired (or whose function went away meanwhile).</summary>
    public static KmsException Retired(string function, int revision, bool deleted = false) =>
        new(403, deleted
            ? $"attestation refused: function {function} was deleted"
            : string.Create(CultureInfo.InvariantCulture, $"attestation refused: revision retired: revision {revision} of function {function} was retired"));

    private async Task<(int Tokens, int Certificates)> RevokeCredentialsAsync(UnsealedState state, string function, int revision, CancellationToken ct)
    {
        var tokens = 0;
        foreach (var (key, hash) in await IssuedCredentials.TokenEntriesAsync(state.Barrier, function, revision, ct).ConfigureAwait(false))
        {
            if (await state.Tokens.LookupValidAsync(hash, ct).ConfigureAwait(false) is not null)
            {
                tokens++;
            }

            // Revokes children too: anything a function token created dies with it.
            await state.Tokens.RevokeTreeAsync(hash, ct).ConfigureAwait(false);
            await state.Barrier.DeleteAsync(IssuedCredentials.TokenKey(function, revision, key), ct).ConfigureAwait(false);
        }

        return (tokens, await certificates.RevokeAsync(state, function, revision, ct).ConfigureAwait(false));
    }
}
