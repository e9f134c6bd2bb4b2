namespace Morphisms.Attestation.Validate;

/// <summary>
/// What an SGX enclave must be for a relying party to accept it (appraisal, after the quote was
/// verified authentic). Unset expectations are not checked. The defaults refuse a debug enclave and
/// accept only an UpToDate TCB.
/// </summary>
public sealed record SgxPolicy
{
    /// <summary>The default policy: debug refused, UpToDate TCB only, no reference values.</summary>
    public static SgxPolicy Default { get; } = new();

    /// <summary>Acceptable MRENCLAVE values (32 bytes each); null accepts any.</summary>
    public IReadOnlyList<byte[]>? MrEnclaves { get; init; }

    /// <summary>Expected MRSIGNER (32 bytes); null accepts any. Usually combined with <see cref="IsvProdId"/> and <see cref="MinimumIsvSvn"/>.</summary>
    public byte[]? MrSigner { get; init; }

    /// <summary>Expected ISVPRODID; null accepts any.</summary>
    public ushort? IsvProdId { get; init; }

    /// <summary>Minimum ISVSVN; null accepts any.</summary>
    public ushort? MinimumIsvSvn { get; init; }

    /// <summary>Expected REPORTDATA (up to 64 bytes; a shorter value must be followed by zeros); null accepts any.</summary>
    public byte[]? ReportData { get; init; }

    /// <summary>Accept an enclave launched in debug mode. Off by default: the host can read a debug enclave's memory.</summary>
    public bool AllowDebug { get; init; }

    /// <summary>
    /// TCB statuses to accept (Intel's names, see <see cref="Collateral.TcbStatus"/>). Default: UpToDate only.
    /// Accepting another status (for example SWHardeningNeeded) turns it into a warning instead of a failure.
    /// </summary>
    public IReadOnlyCollection<string> AcceptedTcbStatuses { get; init; } = DcapTcbPolicy.DefaultStatuses;

    /// <summary>When set, every advisory ID of the matched TCB levels must be in this list; null accepts any.</summary>
    public IReadOnlyCollection<string>? AcceptedAdvisoryIds { get; init; }

    /// <summary>
    /// Minimum <c>tcbEvaluationDataNumber</c> of the collateral the TCB status was computed from (the lower of the TCB
    /// info's and the QE identity's, <see cref="Verify.Dcap.TcbEvaluation.TcbEvaluationDataNumber"/>); null accepts any.
    /// Intel raises the number with each TCB recovery; older collateral, still within its nextUpdate for about 30 days,
    /// can rate a platform the recovery made OutOfDate as UpToDate. Set it to the number of the recovery you require.
    /// </summary>
    public int? MinimumTcbEvaluationDataNumber { get; init; }
}
