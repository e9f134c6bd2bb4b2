namespace Morphisms.Kms.HighAvailability;

/// <summary>The active node as the leader row and the lock table describe it (what a standby redirects to).</summary>
/// <param name="NodeId">The active node's random id (new every process start).</param>
/// <param name="Address">Its advertised API address (<c>--api-addr</c>).</param>
/// <param name="ActiveSince">When it became active.</param>
internal sealed record LeaderRecord(string NodeId, Uri Address, DateTimeOffset ActiveSince);
