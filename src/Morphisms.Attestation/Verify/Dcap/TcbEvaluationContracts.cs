namespace Morphisms.Attestation.Verify.Dcap;

/// <summary>The platform TCB as the PCK certificate states it.</summary>
/// <param name="Fmspc">FMSPC, 6 bytes.</param>
/// <param name="PceId">PCEID, 2 bytes.</param>
/// <param name="SgxTcbComponents">The 16 SGX TCB component SVNs (the CPUSVN as certified).</param>
/// <param name="PceSvn">The PCE SVN as certified.</param>
public sealed record PlatformTcb(byte[] Fmspc, byte[] PceId, byte[] SgxTcbComponents, ushort PceSvn);

/// <summary>The TDX-specific TCB inputs, from the TD report body.</summary>
/// <param name="TeeTcbSvn">TEE_TCB_SVN, 16 bytes (byte 0 = TDX module ISV SVN, byte 1 = module major version).</param>
/// <param name="MrSignerSeam">MRSIGNERSEAM, 48 bytes.</param>
/// <param name="SeamAttributes">SEAMATTRIBUTES, 8 bytes.</param>
public sealed record TdxTcb(byte[] TeeTcbSvn, byte[] MrSignerSeam, byte[] SeamAttributes)
{
    /// <summary>
    /// TEE_TCB_SVN2 of a TD report 1.5 (quote v5 body type 3), 16 bytes; null for TD report 1.0.
    /// Intel's algorithm uses it to tell a TD that only needs a relaunch from an out-of-date one.
    /// </summary>
    public byte[]? TeeTcbSvn2 { get; init; }
}

/// <summary>The identity of the quoting enclave, from the QE report inside the quote.</summary>
/// <param name="MrSigner">MRSIGNER, 32 bytes.</param>
/// <param name="IsvProdId">ISVPRODID.</param>
/// <param name="IsvSvn">ISVSVN.</param>
/// <param name="MiscSelect">MISCSELECT.</param>
/// <param name="Attributes">ATTRIBUTES, 16 bytes.</param>
public sealed record QeReportIdentity(byte[] MrSigner, ushort IsvProdId, ushort IsvSvn, uint MiscSelect, byte[] Attributes);

/// <summary>
/// The TCB status Intel's algorithm assigns. <see cref="Status"/> is the final combined status
/// (platform, TDX module and QE converged as Intel's QVL does), null when none could be computed
/// (for example "no matching TCB level").
/// </summary>
public sealed record TcbEvaluation
{
    /// <summary>Combined status: UpToDate, SWHardeningNeeded, ConfigurationNeeded, ConfigurationAndSWHardeningNeeded, OutOfDate, OutOfDateConfigurationNeeded or Revoked.</summary>
    public string? Status { get; init; }

    /// <summary>Status of the matched platform TCB level.</summary>
    public string? PlatformStatus { get; init; }

    /// <summary>Status of the matched QE identity TCB level.</summary>
    public string? QeStatus { get; init; }

    /// <summary>Status of the matched TDX module identity level (TDX only, when the module has one).</summary>
    public string? TdxModuleStatus { get; init; }

    /// <summary>Advisory IDs of the matched levels (platform, module and QE), de-duplicated.</summary>
    public IReadOnlyList<string> AdvisoryIds { get; init; } = [];

    /// <summary>tcbDate of the matched platform level.</summary>
    public DateTimeOffset? TcbDate { get; init; }

    /// <summary>Id of the TDX module identity used (<c>TDX_01</c>, <c>TDX_03</c>, …); null for SGX and for module major version 0.</summary>
    public string? TdxModuleIdentityId { get; init; }

    /// <summary>
    /// The TCB recovery event the collateral reflects: the lower <c>tcbEvaluationDataNumber</c> of the verified TCB
    /// info and QE identity (Intel's QVL reports the same as <c>tcb_eval_ref_num</c>); null when neither verified.
    /// A status computed from collateral older than a TCB recovery can say UpToDate for a platform the recovery made
    /// OutOfDate, so a policy can require a minimum (<c>MinimumTcbEvaluationDataNumber</c>).
    /// </summary>
    public int? TcbEvaluationDataNumber { get; init; }
}
