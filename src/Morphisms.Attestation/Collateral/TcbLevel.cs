namespace Morphisms.Attestation.Collateral;

/// <summary>One platform TCB level of a TCB info document.</summary>
/// <param name="SgxTcbComponents">The 16 SGX TCB component SVNs the level requires (compared with the PCK certificate's).</param>
/// <param name="PceSvn">The PCE SVN the level requires.</param>
/// <param name="TdxTcbComponents">TDX only: the 16 TDX TCB component SVNs the level requires (compared with TEE_TCB_SVN); null for SGX.</param>
/// <param name="TcbDate">When Intel assessed this level.</param>
/// <param name="Status">Its status, one of <see cref="TcbStatus.PlatformLevelStatuses"/> (kept as written so a future status is reported, not hidden).</param>
/// <param name="AdvisoryIds">Intel security advisories that apply to platforms at this level (empty in TCB info v2).</param>
public sealed record TcbLevel(
    byte[] SgxTcbComponents,
    ushort PceSvn,
    byte[]? TdxTcbComponents,
    DateTimeOffset TcbDate,
    string Status,
    IReadOnlyList<string> AdvisoryIds);
