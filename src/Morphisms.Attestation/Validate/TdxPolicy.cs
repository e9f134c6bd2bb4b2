namespace Morphisms.Attestation.Validate;

/// <summary>
/// What a TDX trust domain must be for a relying party to accept it (appraisal, after the quote was
/// verified authentic). Unset expectations are not checked. The defaults refuse a debug or profiled TD (any TUD bit of
/// TD_ATTRIBUTES) and a migratable one, and accept only an UpToDate TCB.
/// </summary>
public sealed record TdxPolicy
{
    /// <summary>The default policy: debug, profiling and migration refused, UpToDate TCB only, no reference values.</summary>
    public static TdxPolicy Default { get; } = new();

    /// <summary>Acceptable MRTD values (48 bytes each); null accepts any.</summary>
    public IReadOnlyList<byte[]>? MrTds { get; init; }

    /// <summary>Expected RTMR0 (48 bytes, firmware); null accepts any.</summary>
    public byte[]? Rtmr0 { get; init; }

    /// <summary>Expected RTMR1 (48 bytes, OS loader and kernel); null accepts any.</summary>
    public byte[]? Rtmr1 { get; init; }

    /// <summary>Expected RTMR2 (48 bytes, command line and initrd); null accepts any.</summary>
    public byte[]? Rtmr2 { get; init; }

    /// <summary>Expected RTMR3 (48 bytes, runtime); null accepts any.</summary>
    public byte[]? Rtmr3 { get; init; }

    /// <summary>Expected MRCONFIGID (48 bytes); null accepts any.</summary>
    public byte[]? MrConfigId { get; init; }

    /// <summary>Expected MROWNER (48 bytes); null accepts any.</summary>
    public byte[]? MrOwner { get; init; }

    /// <summary>Expected MROWNERCONFIG (48 bytes); null accepts any.</summary>
    public byte[]? MrOwnerConfig { get; init; }

    /// <summary>Expected REPORTDATA (up to 64 bytes; a shorter value must be followed by zeros); null accepts any.</summary>
    public byte[]? ReportData { get; init; }

    /// <summary>
    /// Accept a TD with TD_ATTRIBUTES.DEBUG (bit 0) set. Off by default: the host can read a debug TD's state. The other TUD
    /// bits (7:1, the host's profiling of the TD among them) are refused whatever this says.
    /// </summary>
    public bool AllowDebug { get; init; }

    /// <summary>
    /// Accept a TD with TD_ATTRIBUTES.MIGRATABLE (bit 29) set. Off by default: such a TD can be exported by a migration TD
    /// the host chooses (its MRTD and RTMRs are no part of this TD's report), as SNP's
    /// <see cref="SnpPolicy.AllowMigrationAgent"/>. When the opt-out is relied on, the result carries a warning.
    /// </summary>
    public bool AllowMigratable { get; init; }

    /// <summary>
    /// TCB statuses to accept (Intel's names, see <see cref="Collateral.TcbStatus"/>). Default: UpToDate only.
    /// Accepting another status turns it into a warning instead of a failure.
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

    /// <summary>The expected RTMRs in index order (null entries accept any).</summary>
    internal IReadOnlyList<byte[]?> Rtmrs => [Rtmr0, Rtmr1, Rtmr2, Rtmr3];
}
