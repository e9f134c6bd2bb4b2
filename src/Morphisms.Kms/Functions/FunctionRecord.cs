using System.Text.Json.Serialization;

namespace Morphisms.Kms.Functions;

/// <summary>
/// One registered function, stored under the barrier at <c>morphisms/functions/NAME</c>. Reference values are
/// kept as numbered revisions rather than overwritten, so the later update flow (owner approval of new values,
/// retiring a revision) can add states without migrating stored records. A deleted function that required owner
/// approval leaves the same record, with <see cref="DeletedTime"/> set, at <c>morphisms/tombstones/NAME</c>: its
/// owners still decide what may be registered under the name (see <c>FunctionRegistry.Tombstones.cs</c>).
/// </summary>
internal sealed record FunctionRecord
{
    /// <summary>The function name (a DNS label: it becomes part of certificate names).</summary>
    public required string Name { get; init; }

    /// <summary>Who owns the function: the names that may approve updates (see <c>Updates/</c>).</summary>
    public List<string> Owners { get; init; } = [];

    /// <summary>
    /// M of the M-of-N owner approval: with M &gt; 0, new reference values, owners or M itself become a pending
    /// update that M distinct owners must approve; 0 applies writes at once.
    /// </summary>
    public int ApprovalsRequired { get; init; }

    /// <summary>Updates awaiting approval and the most recent resolved ones, oldest first.</summary>
    public List<Updates.PendingUpdate> Updates { get; init; } = [];

    /// <summary>The id the next pending update gets (ids are never reused).</summary>
    public int NextUpdateId { get; init; } = 1;

    /// <summary>Policies granted to an attested instance's token (never <c>root</c> or <c>default</c>).</summary>
    public List<string> Policies { get; init; } = [];

    /// <summary>TTL of a login token, seconds.</summary>
    public long TokenTtl { get; init; }

    /// <summary>Lifetime cap of a login token including renewals, seconds.</summary>
    public long TokenMaxTtl { get; init; }

    /// <summary>The KV path of the function's secret bundle (<c>MOUNT/PATH</c>), or null.</summary>
    public string? SecretPath { get; init; }

    /// <summary>The KV path the function's instances read their bundle from: <see cref="SecretPath"/>, else <c>secret/data/NAME</c>.</summary>
    [System.Text.Json.Serialization.JsonIgnore]
    public string EffectiveSecretPath => SecretPath ?? $"secret/data/{Name}";

    /// <summary>
    /// The secret paths an owned function's applied updates moved it away from, oldest first. Each stays the
    /// function's (<see cref="OwnedBundleGuard"/>: its instances read, its owners manage) for as long as the function or
    /// its tombstone is owned: its stored versions are the function's secrets, which a policy the host writes must
    /// not reach once the function reads elsewhere. Moving back takes a path off the list.
    /// </summary>
    public List<string> FormerSecretPaths { get; init; } = [];

    /// <summary>Reference value revisions, oldest first.</summary>
    public List<FunctionRevision> Revisions { get; init; } = [];

    /// <summary>When the function was registered.</summary>
    public DateTimeOffset CreatedTime { get; init; }

    /// <summary>When it last changed.</summary>
    public DateTimeOffset UpdatedTime { get; init; }

    /// <summary>When the function was deleted, on a tombstone; null on a registered function.</summary>
    public DateTimeOffset? DeletedTime { get; init; }

    /// <summary>Whether this is a deleted function's tombstone (never accepted at login).</summary>
    [JsonIgnore]
    public bool IsTombstone => DeletedTime is not null;

    /// <summary>Revisions whose reference values are accepted at login.</summary>
    [JsonIgnore]
    public IEnumerable<FunctionRevision> ActiveRevisions => Revisions.Where(r => r.Status == RevisionStatus.Active);

    /// <summary>The newest revision, or null.</summary>
    [JsonIgnore]
    public FunctionRevision? Current => Revisions.Count == 0 ? null : Revisions[^1];
}

/// <summary>One set of reference values with its number and state.</summary>
internal sealed record FunctionRevision
{
    /// <summary>1, 2, 3, … in registration order.</summary>
    public required int Revision { get; init; }

    /// <summary>See <see cref="RevisionStatus"/>.</summary>
    public required string Status { get; init; }

    /// <summary>When the revision was registered.</summary>
    public required DateTimeOffset CreatedTime { get; init; }

    /// <summary>The reference values.</summary>
    public required ReferenceValues ReferenceValues { get; init; }

    /// <summary>When the revision was retired (its tokens and certificates revoked), or null.</summary>
    public DateTimeOffset? RetiredTime { get; init; }
}

/// <summary>Revision states. Values awaiting owner approval are not a revision yet: they are a pending update.</summary>
internal static class RevisionStatus
{
    /// <summary>Accepted at login.</summary>
    public const string Active = "active";

    /// <summary>Replaced by a newer revision; kept for history, not accepted.</summary>
    public const string Superseded = "superseded";

    /// <summary>Withdrawn: its tokens and certificates were revoked and its measurement is refused at login.</summary>
    public const string Retired = "retired";
}
