namespace Morphisms.Attestation.Collateral;

/// <summary>One TCB level keyed by an ISV SVN: a QE/TD QE identity level, or a TDX module identity level.</summary>
/// <param name="IsvSvn">The minimum ISV SVN (QE ISVSVN, or the TDX module SVN = TEE_TCB_SVN[0]) for this level.</param>
/// <param name="TcbDate">When Intel assessed this level.</param>
/// <param name="Status">Its status (UpToDate, OutOfDate, Revoked, …).</param>
/// <param name="AdvisoryIds">Intel security advisories that apply at this level.</param>
public sealed record EnclaveTcbLevel(ushort IsvSvn, DateTimeOffset TcbDate, string Status, IReadOnlyList<string> AdvisoryIds);
