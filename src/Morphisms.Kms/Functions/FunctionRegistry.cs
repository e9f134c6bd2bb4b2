using Morphisms.Kms.Barrier;
using Morphisms.Kms.Http;
using Morphisms.Kms.Updates;

namespace Morphisms.Kms.Functions;

/// <summary>
/// The registered functions under the barrier at <c>morphisms/functions/NAME</c> (and the tombstones of deleted
/// ones that required owner approval at <c>morphisms/tombstones/NAME</c>, and the last revision number of every deleted
/// name at <c>morphisms/deleted/NAME</c>). Writes are serialised so that revision numbers are never handed out twice,
/// not even to a function registered afresh under a deleted function's name.
/// </summary>
/// <param name="storage">The barrier.</param>
/// <param name="time">The clock.</param>
/// <param name="kvKeyExists">Whether a KV data path holds a key (<c>MountTable.KvKeyExistsAsync</c>): an owned function moves only to an empty path.</param>
internal sealed partial class FunctionRegistry(ISecureStorage storage, TimeProvider time, Func<string, CancellationToken, Task<bool>> kvKeyExists)
{
    /// <summary>A login token's TTL when the registration does not say (DESIGN.md §3).</summary>
    public static readonly TimeSpan DefaultTokenTtl = TimeSpan.FromSeconds(30);

    /// <summary>A login token's lifetime cap when the registration does not say (DESIGN.md §3).</summary>
    public static readonly TimeSpan DefaultTokenMaxTtl = TimeSpan.FromMinutes(60);

    private const string Prefix = "morphisms/functions/";
    private const int MaxRevisionsKept = 100;
    private readonly SemaphoreSlim _writes = new(1, 1);

    /// <summary>Validates a function name: a lowercase DNS label, because it becomes <c>NAME.DOMAIN</c> in certificates.</summary>
    public static string ValidName(string name) =>
        name.Length is >= 1 and <= 63
        && name.All(c => char.IsAsciiLetterLower(c) || char.IsAsciiDigit(c) || c == '-')
        && name[0] != '-' && name[^1] != '-'
            ? name
            : throw KmsException.BadRequest("invalid function name: use 1-63 lowercase letters, digits and '-' (a DNS label)");

    /// <summary>The registered function, or null (a tombstone is not a registered function: see <see cref="GetTombstoneAsync"/>).</summary>
    public Task<FunctionRecord?> GetAsync(string name, CancellationToken ct) =>
        storage.GetJsonAsync<FunctionRecord>(Prefix + name, ct);

    /// <summary>Every registered name, sorted.</summary>
    public Task<IReadOnlyList<string>> ListAsync(CancellationToken ct) => storage.ListAsync(Prefix, ct);

    /// <summary>
    /// Creates or updates a function. Fields the spec leaves out keep their value; new reference values that differ
    /// from the current revision's become a new active revision and the older ones are superseded. When the function
    /// requires owner approval, changes to reference values, owners, the threshold or the secret path become a pending
    /// update instead and only the other fields (policies, TTLs) change now. A write that makes a function without
    /// required approvals owned retires every revision but the one in force (see <see cref="FunctionWrite.Retired"/>).
    /// A tombstoned name is the deleted function:
    /// a write that changes none of the gated fields registers it again at once, any other becomes a pending
    /// <see cref="UpdateKind.Restore"/>.
    /// </summary>
    /// <param name="name">A name already checked by <see cref="ValidName"/>.</param>
    /// <param name="spec">The validated write.</param>
    /// <param name="maxTokenTtl">The KMS-wide token lifetime cap; a registration may not exceed it.</param>
    /// <param name="ct">Cancellation.</param>
    public async Task<FunctionWrite> PutAsync(string name, FunctionSpec spec, TimeSpan maxTokenTtl, CancellationToken ct)
    {
        await _writes.WaitAsync(ct).ConfigureAwait(false);
        try
        {
            var existing = await GetOrTombstoneAsync(name, ct).ConfigureAwait(false);
            var now = time.GetUtcNow();

            // A fresh registration of a deleted name is another function: it continues the name's numbering.
            var after = existing is null ? await LastDeletedRevisionAsync(name, ct).ConfigureAwait(false) : 0;
            var ttl = spec.TokenTtl ?? (existing is null ? DefaultTokenTtl : TimeSpan.FromSeconds(existing.TokenTtl));
            var maxTtl = spec.TokenMaxTtl ?? (existing is null ? DefaultTokenMaxTtl : TimeSpan.FromSeconds(existing.TokenMaxTtl));
            if (maxTtl > maxTokenTtl)
            {
                throw StrictObject.Invalid("token_max_ttl", $"at most the KMS's maximum token TTL ({Durations.ToGoString(maxTokenTtl)})");
            }

            if (ttl > maxTtl)
            {
                throw StrictObject.Invalid(spec.TokenTtl is not null ? "token_ttl" : "token_max_ttl",
                    $"token_ttl ({Durations.ToGoString(ttl)}) not above token_max_ttl ({Durations.ToGoString(maxTtl)})");
            }

            var owners = spec.Owners ?? existing?.Owners ?? [];
            var approvals = spec.ApprovalsRequired ?? existing?.ApprovalsRequired ?? 0;
            if (approvals > owners.Count)
            {
                throw StrictObject.Invalid(spec.ApprovalsRequired is not null ? "approvals_required" : "owners", $"approvals_required ({approvals}) not above the number of owners ({owners.Count})");
            }

            var proposed = existing is { ApprovalsRequired: > 0 } gated ? Propose(gated, spec, now) : null;
            var repeated = proposed is not null && proposed.Id < existing!.NextUpdateId;

            var record = new FunctionRecord
            {
                Name = name,
                Owners = existing is { ApprovalsRequired: > 0 } ? existing.Owners : owners,
                ApprovalsRequired = existing is { ApprovalsRequired: > 0 } ? existing.ApprovalsRequired : approvals,
                Policies = spec.Policies ?? existing?.Policies ?? [],
                TokenTtl = (long)ttl.TotalSeconds,
                TokenMaxTtl = (long)maxTtl.TotalSeconds,
                SecretPath = existing is { ApprovalsRequired: > 0 } ? existing.SecretPath : spec.SecretPath ?? existing?.SecretPath,
                FormerSecretPaths = existing?.FormerSecretPaths ?? [],
                Revisions = existing is { ApprovalsRequired: > 0 } ? existing.Revisions : Revise(existing, spec.ReferenceValues, now, after),
                Updates = proposed is null || repeated ? existing?.Updates ?? [] : KeepRecent([.. existing!.Updates, proposed]),
                NextUpdateId = (existing?.NextUpdateId ?? 1) + (proposed is null || repeated ? 0 : 1),
                CreatedTime = existing?.CreatedTime ?? now,
                UpdatedTime = now,

                // Stays a tombstone while the change waits for the owners; comes back when nothing gated changes.
                DeletedTime = proposed is null ? null : existing?.DeletedTime,
            };

            // Only values this write puts into a new revision or a new proposal must set an SNP TCB floor: re-sending
            // what the registry already holds (the host does at every deploy) or repeating a pending proposal adds
            // nothing, and values stored before the floor was required keep working as they are.
            var introduced = proposed is not null ? !repeated && proposed.ReferenceValues is not null : record.Current?.Revision != existing?.Current?.Revision;
            if (introduced && SnpTcbFloor.Check(spec.ReferenceValues) is { } missingFloor)
            {
                throw missingFloor;
            }

            // Made owned by this write, which applies at once (there is no one to ask yet): the revisions before the one
            // in force were never the owners' to approve, and their instances (the host's own code, say) hold tokens
            // that would read the bundle the owners write next. Retired here, in the same write; the caller revokes
            // their credentials.
            List<int> retired = [];
            if (existing is { ApprovalsRequired: 0 } && record.ApprovalsRequired > 0)
            {
                var inForce = record.Current?.Revision;
                retired = [.. record.Revisions.Where(r => r.Revision != inForce && r.Status != RevisionStatus.Retired).Select(r => r.Revision)];
                record = record with { Revisions = [.. record.Revisions.Select(r => retired.Contains(r.Revision) ? r with { Status = RevisionStatus.Retired, RetiredTime = now } : r)] };
            }

            List<int> cancelled = [];
            var restored = existing is { IsTombstone: true } && !record.IsTombstone;
            if (restored)
            {
                (record, cancelled) = CancelPending(record, now);
                record = record with { Updates = KeepRecent(record.Updates) };
            }

            // Every path the record as stored holds anew, not only its approved one: a proposed move's, and, for a
            // function made owned again, the paths it moved away from and its pending moves, released while unowned.
            await RequireClaimsUnheldAsync(existing, record, ct).ConfigureAwait(false);
            if (proposed is { SecretPath: { } proposedPath } && !repeated)
            {
                await RequireEmptyAsync(proposedPath, ct).ConfigureAwait(false);
            }

            await SaveAsync(record, existing?.IsTombstone == true, ct).ConfigureAwait(false);
            return new FunctionWrite(record, proposed, restored, cancelled, repeated, retired);
        }
        finally
        {
            RegistryChanged();
            _writes.Release();
        }
    }

    /// <summary>
    /// The revisions after a write of <paramref name="values"/>; a new one is numbered after the current one, or for a
    /// function without revisions after <paramref name="after"/> (the name's last deleted revision).
    /// </summary>
    private static List<FunctionRevision> Revise(FunctionRecord? existing, ReferenceValues? values, DateTimeOffset now, int after = 0)
    {
        var revisions = existing?.Revisions.ToList() ?? [];
        if (values is null)
        {
            return revisions.Count > 0
                ? revisions
                : throw StrictObject.Invalid("snp", "reference values for at least one of snp, sgx, tdx or simulated when registering a function");
        }

        // Re-sending the same values (an idempotent PUT) must not mint a revision nobody asked for.
        var current = existing?.Current;
        if (current is not null && current.Status != RevisionStatus.Retired && SameValues(current.ReferenceValues, values))
        {
            return revisions;
        }

        revisions = [.. revisions.Select(r => r.Status == RevisionStatus.Active ? r with { Status = RevisionStatus.Superseded } : r)];
        revisions.Add(new FunctionRevision
        {
            Revision = (current?.Revision ?? after) + 1,
            Status = RevisionStatus.Active,
            CreatedTime = now,
            ReferenceValues = values,
        });
        return revisions.Count > MaxRevisionsKept ? revisions.GetRange(revisions.Count - MaxRevisionsKept, MaxRevisionsKept) : revisions;
    }

    /// <summary>Writes <paramref name="record"/> where it belongs; a tombstone that comes back moves in one transaction.</summary>
    private Task SaveAsync(FunctionRecord record, bool wasTombstone, CancellationToken ct) =>
        record.IsTombstone ? storage.PutJsonAsync(TombstonePrefix + record.Name, record, ct)
        : wasTombstone ? storage.TransactAsync([(Prefix + record.Name, SecureStorageJson.ToJson(record)), (TombstonePrefix + record.Name, null)], ct)
        : storage.PutJsonAsync(Prefix + record.Name, record, ct);

    private static bool SameValues(ReferenceValues a, ReferenceValues b) =>
        SecureStorageJson.ToJson(a).AsSpan().SequenceEqual(SecureStorageJson.ToJson(b));
}

/// <summary>What a registry write did.</summary>
/// <param name="Record">The record as stored (a tombstone when <paramref name="Proposed"/> restores a deleted function).</param>
/// <param name="Proposed">The pending update the write became, or null when it took effect.</param>
/// <param name="Restored">Whether the write registered a tombstoned function again.</param>
/// <param name="CancelledUpdates">Pending updates of the tombstone cancelled because it came back.</param>
/// <param name="Repeated">Whether <paramref name="Proposed"/> was already pending (the write repeated it).</param>
/// <param name="Retired">
/// Revisions the write retired: it made the function owned, and those before the revision in force were never
/// approved by its owners. Their tokens and certificates are still to be revoked.
/// </param>
internal sealed record FunctionWrite(FunctionRecord Record, PendingUpdate? Proposed, bool Restored, IReadOnlyList<int> CancelledUpdates, bool Repeated = false, IReadOnlyList<int>? Retired = null);
