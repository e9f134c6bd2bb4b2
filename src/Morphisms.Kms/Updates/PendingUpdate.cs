using Morphisms.Kms.Functions;

namespace Morphisms.Kms.Updates;

/// <summary>
/// A change to what a function trusts (reference values, owners, the approval threshold, the secret bundle's path)
/// proposed for a function whose <see cref="FunctionRecord.ApprovalsRequired"/> is above zero. Stored inside the
/// function's record, so a proposal, an approval and its application are each one write under the registry's lock.
/// </summary>
internal sealed record PendingUpdate
{
    /// <summary>Per-function id, 1, 2, 3, … (never reused).</summary>
    public required int Id { get; init; }

    /// <summary>See <see cref="UpdateStatus"/>.</summary>
    public required string Status { get; init; }

    /// <summary>See <see cref="UpdateKind"/>; records written before kinds existed read as a change.</summary>
    public string Kind { get; init; } = UpdateKind.Change;

    /// <summary>When it was proposed.</summary>
    public required DateTimeOffset CreatedTime { get; init; }

    /// <summary>When it was applied or cancelled.</summary>
    public DateTimeOffset? ResolvedTime { get; init; }

    /// <summary>New reference values (a new revision once applied), or null to keep them.</summary>
    public ReferenceValues? ReferenceValues { get; init; }

    /// <summary>New owners, or null to keep them.</summary>
    public List<string>? Owners { get; init; }

    /// <summary>New approval threshold, or null to keep it.</summary>
    public int? ApprovalsRequired { get; init; }

    /// <summary>
    /// New KV path of the secret bundle, or null to keep it: gated because the path decides which secrets the attested
    /// code is handed as its own (a path the proposer can write would feed it keys the proposer knows).
    /// </summary>
    public string? SecretPath { get; init; }

    /// <summary>Owners who approved, in order.</summary>
    public List<UpdateApproval> Approvals { get; init; } = [];

    /// <summary>
    /// The approvals that count towards the threshold: those by owners in <paramref name="owners"/>, the function's
    /// owners now. Approvals are kept as given, but one by an owner a later update removed no longer counts: else a
    /// replaced owner's earlier approval would let fewer current owners than required put an update into effect.
    /// </summary>
    public int ApprovalsBy(IReadOnlyList<string> owners) => Approvals.Count(a => owners.Contains(a.Owner, StringComparer.Ordinal));

    /// <summary>The revision the update created when applied with new reference values.</summary>
    public int? AppliedRevision { get; init; }
}

/// <summary>One owner's approval.</summary>
/// <param name="Owner">The owner's name (the approving token's <c>morphisms_owner</c> metadata).</param>
/// <param name="Time">When.</param>
internal sealed record UpdateApproval(string Owner, DateTimeOffset Time);

/// <summary>Update states.</summary>
internal static class UpdateStatus
{
    /// <summary>Waiting for approvals.</summary>
    public const string Pending = "pending";

    /// <summary>Approved by enough owners and in effect.</summary>
    public const string Applied = "applied";

    /// <summary>Withdrawn before it was applied.</summary>
    public const string Cancelled = "cancelled";
}

/// <summary>What an update does once applied.</summary>
internal static class UpdateKind
{
    /// <summary>Changes a registered function's reference values, owners, threshold or secret path.</summary>
    public const string Change = "change";

    /// <summary>Registers a deleted function again (its tombstone becomes the function) with the proposed values.</summary>
    public const string Restore = "restore";

    /// <summary>Removes a deleted function's tombstone: the owners release the name, and anyone may register it afresh.</summary>
    public const string Purge = "purge";
}
